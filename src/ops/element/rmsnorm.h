// RMSNorm's element rules (ops/cpu/rmsnorm.h has the layer and the derivation): r = rstd of a
// row from its Σx² in fp64, y = w·(x·r), and backward's dx and dw terms, in fp64 as the CPU.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/hd.h"

namespace lomo {

// r = 1/sqrt(Σx²/d + eps), from the fp64 sum of squares of a row of d.
template <class T>
LOMO_HD T rmsnorm_rstd(double sum_squares, int64_t d, double eps) {
#if defined(__CUDA_ARCH__)
  return static_cast<T>(1.0 / ::sqrt(sum_squares / static_cast<double>(d) + eps));
#else
  return static_cast<T>(1.0 / std::sqrt(sum_squares / static_cast<double>(d) + eps));
#endif
}

// One term of Σx²: an fp32 square is exact in fp64.
template <class T>
LOMO_HD double rmsnorm_square(T x) {
  return static_cast<double>(x) * x;
}

// y = w·(x·r)
template <class T>
LOMO_HD T rmsnorm_value(T x, T r, T w) {
  return w * (x * r);
}

// One term of the row's dot Σ_k w_k dy_k x_k.
template <class T>
LOMO_HD double rmsnorm_dot_term(T w, T dy, T x) {
  return static_cast<double>(w) * dy * x;
}

// c = r³·dot/d, the row's coefficient of x in dx.
LOMO_HD double rmsnorm_dx_coef(double r, double dot, int64_t d) {
  return r * r * r * dot / static_cast<double>(d);
}

// In the forward pass this was y_j = w_j·x_j·r, with r depending on every x_k:
// dx_j = r·w_j·dy_j − c·x_j.
template <class T>
LOMO_HD T rmsnorm_dx(double r, T w, T dy, double c, T x) {
  return static_cast<T>(r * w * dy - c * x);
}

// One row's term of dw_j = Σ_n dy_nj·x_nj·r_n.
template <class T>
LOMO_HD double rmsnorm_dw_term(T dy, T x, double r) {
  return static_cast<double>(dy) * x * r;
}

}  // namespace lomo
