// Rotary position embedding on the CPU (the table and conventions: ops/rope.h). Both run in
// place.
#pragma once

#include <cstdint>

#include "ops/rope.h"

namespace lomo {

// x(B, T, n_heads, head_dim), position of token t is t.
template <class T>
void rope_forward(T* x, const RopeTable& table, int64_t B, int64_t Tlen, int64_t n_heads,
                  int64_t head_dim);
// The same rotation for tokens at positions pos0 … pos0 + Tlen − 1 (after a KV cache).
template <class T>
void rope_forward_at(T* x, const RopeTable& table, int64_t pos0, int64_t B, int64_t Tlen,
                     int64_t n_heads, int64_t head_dim);
template <class T>
void rope_backward(T* dx, const RopeTable& table, int64_t B, int64_t Tlen, int64_t n_heads,
                   int64_t head_dim);

}  // namespace lomo
