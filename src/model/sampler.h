// Choosing the next token from the logits: greedy, or sampling with the usual filters, applied in
// transformers' order (generation/utils.py, _get_logits_processor): the repetition penalty, then
// temperature, top-k, top-p, min-p. The random draw comes from the counter-based generator
// (core/rng.h): the value for (seed, stream, index) never depends on anything else, so a seed
// repeats a generation exactly, whatever ran before or beside it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace lomo {

struct SamplingOptions {
  double temperature = 0.7;  // 0: greedy (argmax; the first of equal maxima)
  int64_t top_k = 0;         // keep the k most likely (and ties with the k-th); 0: off
  double top_p = 1.0;        // keep the most likely tokens until their mass reaches p; 1: off
  double min_p = 0.0;        // drop tokens less likely than min_p · the most likely; 0: off
  double repetition_penalty = 1.0;  // > 1 discourages ids already in the context; 1: off
  uint64_t seed = 0;
};

// The penalty of transformers' RepetitionPenaltyLogitsProcessor, in place on logits(V): every id
// that occurs in `context` (once, however often it occurs) has its logit divided by `penalty`
// when positive and multiplied by it when negative.
void apply_repetition_penalty(std::vector<float>& logits, std::span<const int32_t> context,
                              double penalty);

// The next token. `logits`(V) is modified (the penalty); `context`: the ids the penalty looks at
// (prompt and generated so far); the draw is counter_uniform(seed, stream, index).
int32_t sample_token(std::vector<float>& logits, std::span<const int32_t> context,
                     const SamplingOptions& opts, uint64_t stream, uint64_t index);

// The probabilities sampling draws from after every filter (V entries, 0 for removed tokens):
// what sample_token draws from, for tests and for inspection. Greedy: 1 on the argmax.
std::vector<double> sampling_distribution(const std::vector<float>& logits,
                                          const SamplingOptions& opts);

}  // namespace lomo
