#include "ops/rope.h"

#include <atomic>
#include <cmath>

namespace lomo {

RopeTable make_rope_table(const RopeConfig& rope, int64_t head_dim, int64_t max_pos) {
  static std::atomic<uint64_t> next_serial{1};
  RopeTable t;
  t.serial = next_serial++;
  t.max_pos = max_pos;
  t.half = head_dim / 2;
  std::vector<float> inv(t.half);
  for (int64_t i = 0; i < t.half; ++i) {
    const float expo = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv[i] = 1.0f / std::pow(static_cast<float>(rope.theta), expo);
  }
  if (rope.scaling == RopeScaling::Linear) {
    for (auto& f : inv) f = f / static_cast<float>(rope.factor);
  } else if (rope.scaling == RopeScaling::Llama3) {
    // transformers' _compute_llama3_parameters: long wavelengths divided by factor, short ones
    // kept, the band between interpolated smoothly.
    const float factor = static_cast<float>(rope.factor);
    const float old_len = static_cast<float>(rope.original_max_position);
    const float low_wavelen = old_len / static_cast<float>(rope.low_freq_factor);
    const float high_wavelen = old_len / static_cast<float>(rope.high_freq_factor);
    const float lo = static_cast<float>(rope.low_freq_factor);
    const float hi = static_cast<float>(rope.high_freq_factor);
    for (auto& f : inv) {
      const float wavelen = 2.0f * static_cast<float>(M_PI) / f;
      float g = wavelen > low_wavelen ? f / factor : f;
      const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      if (medium) {
        const float smooth = (old_len / wavelen - lo) / (hi - lo);
        g = (1.0f - smooth) * g / factor + smooth * g;
      }
      f = g;
    }
  }
  t.cos.resize(max_pos * t.half);
  t.sin.resize(max_pos * t.half);
  for (int64_t p = 0; p < max_pos; ++p) {
    for (int64_t i = 0; i < t.half; ++i) {
      const float angle = static_cast<float>(p) * inv[i];
      t.cos[p * t.half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      t.sin[p * t.half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
  return t;
}

}  // namespace lomo
