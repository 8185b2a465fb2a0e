// Rotary position embedding: the model's RoPE settings and the table of angles every backend
// reads. Hugging Face "rotate_half" convention: dimension i is paired with i + head_dim/2. For a
// pair (a, b) = (x_i, x_{i+h}) at position p with angle θ = p·inv_freq_i:
//   forward:  a' = a·cos θ − b·sin θ,   b' = b·cos θ + a·sin θ
//   backward: the transpose rotation (θ → −θ), since the map is orthogonal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lomo {

enum class RopeScaling { None, Linear, Llama3 };

struct RopeConfig {
  double theta = 10000.0;
  RopeScaling scaling = RopeScaling::None;
  double factor = 1.0;
  double low_freq_factor = 1.0;          // llama3
  double high_freq_factor = 4.0;         // llama3
  int64_t original_max_position = 8192;  // llama3
};

struct RopeTable {
  // Distinct for every table make_rope_table builds (never 0 there), so a device backend can
  // key its copy of the angles by it; a table filled by hand keeps 0 and is uploaded on each use.
  uint64_t serial = 0;
  int64_t max_pos = 0;
  int64_t half = 0;        // head_dim / 2
  std::vector<float> cos;  // (max_pos, half)
  std::vector<float> sin;  // (max_pos, half)
};

// Angles computed in fp32 as transformers does (inv_freq = 1/θ^(2i/hd), then the linear or
// llama3 rescaling, then position·inv_freq), so cos/sin agree with it to the last bit or so.
RopeTable make_rope_table(const RopeConfig& rope, int64_t head_dim, int64_t max_pos);
// Bytes of the table: cos and sin, fp32, (max_pos, head_dim / 2) each.
inline size_t rope_table_bytes(int64_t head_dim, int64_t max_pos) {
  return 2 * static_cast<size_t>(max_pos * (head_dim / 2)) * sizeof(float);
}

}  // namespace lomo
