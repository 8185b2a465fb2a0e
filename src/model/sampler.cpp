#include "model/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"

namespace lomo {

namespace {

// Stream key of the sampling draws, so that they never coincide with another user of the same
// seed (stochastic rounding, initialisation).
constexpr uint64_t kSamplingDomain = 0x73616d706c650000ull;  // "sample"

int32_t argmax(const std::vector<float>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Tokens further below the maximum than this (after temperature) have probability below e^−40
// relative to the most likely one (< 1e-17 each, < 1e-12 together for any real vocabulary):
// they are left out before sorting, which would otherwise cost a sort of the whole vocabulary
// per token.
constexpr double kNegligible = 40.0;

}  // namespace

void apply_repetition_penalty(std::vector<float>& logits, std::span<const int32_t> context,
                              double penalty) {
  if (penalty == 1.0) return;
  const auto V = static_cast<int32_t>(logits.size());
  std::vector<uint8_t> seen(logits.size(), 0);
  const auto p = static_cast<float>(penalty);
  for (int32_t id : context) {
    if (id < 0 || id >= V || seen[id]) continue;
    seen[id] = 1;
    float& l = logits[id];
    l = l < 0 ? l * p : l / p;
  }
}

std::vector<double> sampling_distribution(const std::vector<float>& logits,
                                          const SamplingOptions& o) {
  const int64_t V = static_cast<int64_t>(logits.size());
  LOMO_ASSERT(V > 0, "no logits");
  std::vector<double> probs(static_cast<size_t>(V), 0.0);
  if (o.temperature <= 0) {
    probs[argmax(logits)] = 1.0;
    return probs;
  }
  // Candidates by scaled logit, most likely first (ties by id, so the order is deterministic).
  const double mx = *std::max_element(logits.begin(), logits.end()) / o.temperature;
  std::vector<int32_t> cand;
  std::vector<double> z(static_cast<size_t>(V));
  for (int64_t i = 0; i < V; ++i) {
    z[i] = logits[i] / o.temperature;
    if (z[i] >= mx - kNegligible) cand.push_back(static_cast<int32_t>(i));
  }
  std::sort(cand.begin(), cand.end(),
            [&](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); });
  // top-k: the k-th largest value and everything equal to it stay (TopKLogitsWarper).
  if (o.top_k > 0 && o.top_k < static_cast<int64_t>(cand.size())) {
    const double kth = z[cand[o.top_k - 1]];
    size_t keep = o.top_k;
    while (keep < cand.size() && z[cand[keep]] == kth) ++keep;
    cand.resize(keep);
  }
  // Probabilities over the candidates left.
  auto normalise = [&] {
    double sum = 0;
    for (int32_t i : cand) sum += std::exp(z[i] - mx);
    std::vector<double> p(cand.size());
    for (size_t r = 0; r < cand.size(); ++r) p[r] = std::exp(z[cand[r]] - mx) / sum;
    return p;
  };
  // top-p: a token stays while the mass of the tokens before it is below p (TopPLogitsWarper
  // removes those whose ascending cumulative mass is ≤ 1 − p); the most likely always stays.
  if (o.top_p < 1.0) {
    const std::vector<double> p = normalise();
    double before = 0;
    size_t keep = 0;
    while (keep < cand.size() && (keep == 0 || before < o.top_p)) before += p[keep++];
    cand.resize(keep);
  }
  // min-p: drop tokens whose probability is below min_p times the most likely's
  // (MinPLogitsWarper); a ratio of probabilities, so the renormalisation above cannot change it.
  if (o.min_p > 0) {
    const double top = z[cand[0]];
    const double cut = std::log(o.min_p);
    size_t keep = 1;
    while (keep < cand.size() && z[cand[keep]] - top >= cut) ++keep;
    cand.resize(keep);
  }
  const std::vector<double> p = normalise();
  for (size_t r = 0; r < cand.size(); ++r) probs[cand[r]] = p[r];
  return probs;
}

int32_t sample_token(std::vector<float>& logits, std::span<const int32_t> context,
                     const SamplingOptions& o, uint64_t stream, uint64_t index) {
  apply_repetition_penalty(logits, context, o.repetition_penalty);
  if (o.temperature <= 0) return argmax(logits);
  const std::vector<double> probs = sampling_distribution(logits, o);
  const double u = counter_uniform(o.seed, kSamplingDomain ^ stream, index);
  // Inverse CDF in id order; the last token with mass takes any rounding remainder.
  double cum = 0;
  int32_t last = -1;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0) continue;
    cum += probs[i];
    last = static_cast<int32_t>(i);
    if (u < cum) return last;
  }
  return last;
}

}  // namespace lomo
