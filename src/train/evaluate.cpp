#include "train/evaluate.h"

#include <algorithm>

#include "core/error.h"
#include "data/dataset.h"

namespace lomo {

ChoicePrediction score_choices(LlamaModel& model, const text::Tokenizer& tok,
                               const data::ChoiceExample& ex, Normalize norm, int64_t max_len) {
  LOMO_ASSERT(!ex.candidates.empty(), "an example without candidates");
  ChoicePrediction out;
  std::vector<Sequence> seqs;
  for (const auto& c : ex.candidates) {
    Sequence s = data::prompt_completion(tok, ex.prompt, c, "evaluation");
    if (static_cast<int64_t>(s.ids.size()) > max_len) {
      // Keep the answer and the end of the prompt: drop prompt tokens after BOS.
      const size_t cut = s.ids.size() - static_cast<size_t>(max_len);
      const size_t from = (tok.add_bos && tok.bos_id >= 0) ? 1 : 0;
      size_t answer_start = 0;
      while (answer_start < s.loss.size() && !s.loss[answer_start]) ++answer_start;
      if (from + cut >= answer_start)
        throw Error("an answer alone exceeds --seq-len " + std::to_string(max_len));
      s.ids.erase(s.ids.begin() + from, s.ids.begin() + from + cut);
      s.loss.erase(s.loss.begin() + from, s.loss.begin() + from + cut);
      out.truncated = true;
    }
    seqs.push_back(std::move(s));
  }
  const Batch batch = make_batch(seqs);
  std::vector<float> nll;
  model.forward(batch, &nll);
  for (int64_t b = 0; b < batch.B; ++b) {
    const SequenceLoss l = sequence_loss(batch, nll, b);
    out.scores.push_back(norm == Normalize::Tokens ? l.sum / std::max<int64_t>(1, l.tokens)
                                                   : l.sum);
  }
  out.prediction =
      static_cast<int>(std::min_element(out.scores.begin(), out.scores.end()) - out.scores.begin());
  return out;
}

ChoiceAccuracy evaluate_choices(LlamaModel& model, const text::Tokenizer& tok,
                                const std::vector<data::ChoiceExample>& examples, Normalize norm,
                                int64_t max_len, std::vector<ChoicePrediction>* per_example,
                                const ProgressFn& progress) {
  ChoiceAccuracy acc;
  const auto n = static_cast<int64_t>(examples.size());
  for (const auto& ex : examples) {
    if (progress) progress(acc.examples, n);
    ChoicePrediction p = score_choices(model, tok, ex, norm, max_len);
    ++acc.examples;
    if (ex.label >= 0) {
      ++acc.labelled;
      acc.correct += p.prediction == ex.label;
    }
    if (per_example) per_example->push_back(std::move(p));
  }
  if (progress) progress(n, n);
  return acc;
}

double mean_loss(LlamaModel& model, const std::vector<Sequence>& seqs, int64_t batch_size,
                 const ProgressFn& progress) {
  double sum = 0;
  int64_t tokens = 0;
  const auto n = static_cast<int64_t>(seqs.size());
  for (size_t start = 0; start < seqs.size(); start += static_cast<size_t>(batch_size)) {
    if (progress) progress(static_cast<int64_t>(start), n);
    const std::vector<Sequence> part(
        seqs.begin() + static_cast<std::ptrdiff_t>(start),
        seqs.begin() + static_cast<std::ptrdiff_t>(std::min(seqs.size(), start + batch_size)));
    const Batch batch = make_batch(part);
    sum += model.forward(batch) * static_cast<double>(batch.loss_tokens);
    tokens += batch.loss_tokens;
  }
  if (progress) progress(n, n);
  return tokens ? sum / static_cast<double>(tokens) : 0.0;
}

}  // namespace lomo
