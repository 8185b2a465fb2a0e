// Evaluation by log-likelihood, as the LOMO paper does: each candidate answer is scored by the
// summed NLL of its tokens plus EOS given the prompt; the lowest score wins.
#pragma once

#include <cstdint>
#include <vector>

#include "core/progress.h"
#include "data/tasks.h"
#include "model/batch.h"
#include "model/llama.h"
#include "text/tokenizer.h"

namespace lomo {

enum class Normalize { None, Tokens };  // Tokens: divide by the number of scored tokens

struct ChoicePrediction {
  std::vector<double> scores;  // one per candidate, lower is better
  int prediction = -1;
  bool truncated = false;  // the prompt lost tokens from its start to fit max_len
};

// All candidates of one example in one forward pass (batch = number of candidates).
ChoicePrediction score_choices(LlamaModel& model, const text::Tokenizer& tok,
                               const data::ChoiceExample& ex, Normalize norm, int64_t max_len);

struct ChoiceAccuracy {
  int64_t examples = 0, labelled = 0, correct = 0;
  double accuracy() const { return labelled ? static_cast<double>(correct) / labelled : 0.0; }
};

// `progress` is told after each example (done, of all).
ChoiceAccuracy evaluate_choices(LlamaModel& model, const text::Tokenizer& tok,
                                const std::vector<data::ChoiceExample>& examples, Normalize norm,
                                int64_t max_len,
                                std::vector<ChoicePrediction>* per_example = nullptr,
                                const ProgressFn& progress = {});

// Mean NLL per loss token over a set of sequences, `batch_size` at a time; `progress` is told
// after each batch (sequences done, of all).
double mean_loss(LlamaModel& model, const std::vector<Sequence>& seqs, int64_t batch_size,
                 const ProgressFn& progress = {});

}  // namespace lomo
