// Training data: JSONL, one {"input_ids": [...]} object a line (text formats come later), and
// the order in which steps read it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/batch.h"
#include "model/config.h"

namespace lomo {

struct Dataset {
  std::vector<Sequence> examples;
  int64_t truncated = 0;  // examples cut to seq_len
};

// Validates every line against the model (ids in [0, V), at least 2 tokens, no longer than
// max_position_embeddings) before training starts; errors name the file and line. Sequences
// longer than seq_len are cut to seq_len and counted.
Dataset load_jsonl_ids(const std::string& path, const ModelConfig& config, int64_t seq_len);

enum class Shuffle { On, Off };

// Which examples step k of batch size b reads: sample s = k·b + j (j < b) is example
// order_e[s mod n] of epoch e = s / n, where order_e is the identity (Shuffle::Off) or a seeded
// permutation per epoch.
class BatchOrder {
 public:
  BatchOrder(int64_t n_examples, int64_t batch_size, Shuffle shuffle, uint64_t seed);
  std::vector<int64_t> indices(int64_t step) const;
  int64_t steps_per_epoch() const { return (n_ + b_ - 1) / b_; }

 private:
  std::vector<int64_t> permutation(int64_t epoch) const;
  int64_t n_, b_;
  Shuffle shuffle_;
  uint64_t seed_;
};

}  // namespace lomo
