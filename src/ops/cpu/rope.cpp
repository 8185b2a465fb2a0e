#include "ops/cpu/rope.h"

#include <cmath>

#include "core/error.h"
#include "ops/element/rope.h"

namespace lomo {

namespace {

template <class T>
void rotate(T* x, const RopeTable& table, int64_t pos0, int64_t B, int64_t Tlen, int64_t n_heads,
            int64_t head_dim, T sign) {
  LOMO_ASSERT(pos0 >= 0 && pos0 + Tlen <= table.max_pos && head_dim == 2 * table.half,
              "rope table too small");
  const int64_t h = table.half;
#pragma omp parallel for collapse(2)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < Tlen; ++t) {
      const float* c = table.cos.data() + (pos0 + t) * h;
      const float* s = table.sin.data() + (pos0 + t) * h;
      for (int64_t hd = 0; hd < n_heads; ++hd) {
        T* v = x + ((b * Tlen + t) * n_heads + hd) * head_dim;
        for (int64_t i = 0; i < h; ++i) {
          const T a = v[i], bb = v[i + h];
          const T cc = static_cast<T>(c[i]), ss = sign * static_cast<T>(s[i]);
          v[i] = rope_first(a, bb, cc, ss);
          v[i + h] = rope_second(a, bb, cc, ss);
        }
      }
    }
  }
}

}  // namespace

template <class T>
void rope_forward(T* x, const RopeTable& table, int64_t B, int64_t Tlen, int64_t n_heads,
                  int64_t head_dim) {
  rotate(x, table, int64_t{0}, B, Tlen, n_heads, head_dim, T(1));
}

template <class T>
void rope_forward_at(T* x, const RopeTable& table, int64_t pos0, int64_t B, int64_t Tlen,
                     int64_t n_heads, int64_t head_dim) {
  rotate(x, table, pos0, B, Tlen, n_heads, head_dim, T(1));
}

template <class T>
void rope_backward(T* dx, const RopeTable& table, int64_t B, int64_t Tlen, int64_t n_heads,
                   int64_t head_dim) {
  rotate(dx, table, int64_t{0}, B, Tlen, n_heads, head_dim, T(-1));
}

template void rope_forward<float>(float*, const RopeTable&, int64_t, int64_t, int64_t, int64_t);
template void rope_forward<double>(double*, const RopeTable&, int64_t, int64_t, int64_t, int64_t);
template void rope_forward_at<float>(float*, const RopeTable&, int64_t, int64_t, int64_t, int64_t,
                                     int64_t);
template void rope_forward_at<double>(double*, const RopeTable&, int64_t, int64_t, int64_t,
                                      int64_t, int64_t);
template void rope_backward<float>(float*, const RopeTable&, int64_t, int64_t, int64_t, int64_t);
template void rope_backward<double>(double*, const RopeTable&, int64_t, int64_t, int64_t, int64_t);

}  // namespace lomo
