// The key/value cache of inference: for one sequence, every layer's keys (after RoPE) and values
// at the positions seen so far, so that a new token attends to them instead of recomputing the
// prefix. One tracked buffer (category Activations) from the backend's allocator, sized for
// `capacity` positions when made; positions [0, length()) are valid.
#pragma once

#include <cstdint>

#include "core/memory.h"
#include "model/config.h"
#include "ops/backend.h"

namespace lomo {

class KvCache {
 public:
  KvCache(const ModelConfig& c, int64_t capacity, Backend& backend, MemoryTracker& tracker);

  // Bytes of a cache for `capacity` positions: n_layer · 2 · capacity · n_kv · head_dim fp32.
  static size_t bytes(const ModelConfig& c, int64_t capacity);

  float* k(int64_t layer) { return base(layer, 0); }  // (capacity, n_kv, head_dim)
  float* v(int64_t layer) { return base(layer, 1); }  // (capacity, n_kv, head_dim)
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }
  // Positions [0, n) are valid (n ≤ capacity): after appending, or to keep a prefix (n < length).
  void set_length(int64_t n);

 private:
  float* base(int64_t layer, int which) {
    return buf_.f32() + (2 * layer + which) * capacity_ * row_;
  }
  int64_t capacity_ = 0, row_ = 0, length_ = 0;  // row_: n_kv · head_dim
  Buffer buf_;
};

}  // namespace lomo
