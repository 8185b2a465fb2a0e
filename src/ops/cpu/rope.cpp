#include "ops/cpu/rope.h"

#include <cmath>

#include "core/error.h"

namespace lomo {

RopeTable make_rope_table(const RopeConfig& rope, int64_t head_dim, int64_t max_pos) {
  RopeTable t;
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

namespace {

template <class T>
void rotate(T* x, const RopeTable& table, int64_t B, int64_t Tlen, int64_t n_heads,
            int64_t head_dim, T sign) {
  LOMO_ASSERT(Tlen <= table.max_pos && head_dim == 2 * table.half, "rope table too small");
  const int64_t h = table.half;
#pragma omp parallel for collapse(2)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < Tlen; ++t) {
      const float* c = table.cos.data() + t * h;
      const float* s = table.sin.data() + t * h;
      for (int64_t hd = 0; hd < n_heads; ++hd) {
        T* v = x + ((b * Tlen + t) * n_heads + hd) * head_dim;
        for (int64_t i = 0; i < h; ++i) {
          const T a = v[i], bb = v[i + h];
          const T cc = static_cast<T>(c[i]), ss = sign * static_cast<T>(s[i]);
          v[i] = a * cc - bb * ss;
          v[i + h] = bb * cc + a * ss;
        }
      }
    }
  }
}

}  // namespace

template <class T>
void rope_forward(T* x, const RopeTable& table, int64_t B, int64_t Tlen, int64_t n_heads,
                  int64_t head_dim) {
  rotate(x, table, B, Tlen, n_heads, head_dim, T(1));
}

template <class T>
void rope_backward(T* dx, const RopeTable& table, int64_t B, int64_t Tlen, int64_t n_heads,
                   int64_t head_dim) {
  rotate(dx, table, B, Tlen, n_heads, head_dim, T(-1));
}

template void rope_forward<float>(float*, const RopeTable&, int64_t, int64_t, int64_t, int64_t);
template void rope_forward<double>(double*, const RopeTable&, int64_t, int64_t, int64_t, int64_t);
template void rope_backward<float>(float*, const RopeTable&, int64_t, int64_t, int64_t, int64_t);
template void rope_backward<double>(double*, const RopeTable&, int64_t, int64_t, int64_t, int64_t);

}  // namespace lomo
