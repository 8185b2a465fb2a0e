// Rotary position embedding, Hugging Face "rotate_half" convention: dimension i is paired with
// i + head_dim/2. For a pair (a, b) = (x_i, x_{i+h}) at position p with angle θ = p·inv_freq_i:
//   forward:  a' = a·cos θ − b·sin θ,   b' = b·cos θ + a·sin θ
//   backward: the transpose rotation (θ → −θ), since the map is orthogonal.
// Both run in place.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace lomo {

struct RopeTable {
  int64_t max_pos = 0;
  int64_t half = 0;        // head_dim / 2
  std::vector<float> cos;  // (max_pos, half)
  std::vector<float> sin;  // (max_pos, half)
};

// Angles computed in fp32 as transformers does (inv_freq = 1/θ^(2i/hd), then the linear or
// llama3 rescaling, then position·inv_freq), so cos/sin agree with it to the last bit or so.
RopeTable make_rope_table(const RopeConfig& rope, int64_t head_dim, int64_t max_pos);

// x(B, T, n_heads, head_dim), position of token t is t.
template <class T>
void rope_forward(T* x, const RopeTable& table, int64_t B, int64_t Tlen, int64_t n_heads,
                  int64_t head_dim);
template <class T>
void rope_backward(T* dx, const RopeTable& table, int64_t B, int64_t Tlen, int64_t n_heads,
                   int64_t head_dim);

}  // namespace lomo
