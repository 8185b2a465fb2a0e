#include "train/batch_order.h"

#include <numeric>

#include "core/rng.h"

namespace lomo {

BatchOrder::BatchOrder(int64_t n_examples, int64_t batch_size, Shuffle shuffle, uint64_t seed)
    : n_(n_examples), b_(batch_size), shuffle_(shuffle), seed_(seed) {}

std::vector<int64_t> BatchOrder::permutation(int64_t epoch) const {
  std::vector<int64_t> p(n_);
  std::iota(p.begin(), p.end(), 0);
  if (shuffle_ == Shuffle::Off) return p;
  for (int64_t i = n_ - 1; i > 0; --i) {  // Fisher-Yates, counter-based draws
    const uint64_t r = counter_random(seed_, 0x5348554646ull + static_cast<uint64_t>(epoch),
                                      static_cast<uint64_t>(i));
    std::swap(p[i], p[static_cast<int64_t>(r % static_cast<uint64_t>(i + 1))]);
  }
  return p;
}

std::vector<int64_t> BatchOrder::indices(int64_t step) const {
  std::vector<int64_t> out;
  int64_t cached_epoch = -1;
  std::vector<int64_t> perm;
  for (int64_t j = 0; j < b_; ++j) {
    const int64_t s = step * b_ + j;
    const int64_t epoch = s / n_;
    if (epoch != cached_epoch) {
      perm = permutation(epoch);
      cached_epoch = epoch;
    }
    out.push_back(perm[s % n_]);
  }
  return out;
}

}  // namespace lomo
