// The order in which training steps read the examples.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lomo {

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
