#include "ops/cpu/rmsnorm.h"

#include <algorithm>
#include <cmath>

#include "ops/element/rmsnorm.h"

namespace lomo {

namespace {

template <class T>
void normalize_row(T* yr, const T* xr, T r, const T* w, int64_t d) {
  for (int64_t j = 0; j < d; ++j) yr[j] = rmsnorm_value(xr[j], r, w[j]);
}

}  // namespace

template <class T>
void rmsnorm_forward(T* y, T* rstd, const T* x, const T* w, int64_t N, int64_t d, double eps) {
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * d;
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += rmsnorm_square(xr[j]);
    const T r = rmsnorm_rstd<T>(ss, d, eps);
    rstd[n] = r;
    normalize_row(y + n * d, xr, r, w, d);
  }
}

template <class T>
void rmsnorm_apply(T* y, const T* x, const T* rstd, const T* w, int64_t N, int64_t d) {
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) normalize_row(y + n * d, x + n * d, rstd[n], w, d);
}

template <class T>
void rmsnorm_backward(T* dx, T* dw, const T* dy, const T* x, const T* rstd, const T* w, int64_t N,
                      int64_t d) {
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * d;
    const T* dyr = dy + n * d;
    const double r = rstd[n];
    double dot = 0;  // Σ_k w_k dy_k x_k
    for (int64_t j = 0; j < d; ++j) dot += rmsnorm_dot_term(w[j], dyr[j], xr[j]);
    const double c = rmsnorm_dx_coef(r, dot, d);
    T* dxr = dx + n * d;
    for (int64_t j = 0; j < d; ++j) {
      dxr[j] += rmsnorm_dx(r, w[j], dyr[j], c, xr[j]);
    }
  }
  if (dw == nullptr) return;  // a frozen norm weight: only dx flows
  // dw: columns in blocks, so threads never share an output element.
  constexpr int64_t kBlock = 64;
#pragma omp parallel for
  for (int64_t j0 = 0; j0 < d; j0 += kBlock) {
    const int64_t j1 = std::min(d, j0 + kBlock);
    double acc[kBlock] = {};
    for (int64_t n = 0; n < N; ++n) {
      const double r = rstd[n];
      for (int64_t j = j0; j < j1; ++j)
        acc[j - j0] += rmsnorm_dw_term(dy[n * d + j], x[n * d + j], r);
    }
    for (int64_t j = j0; j < j1; ++j) dw[j] = static_cast<T>(acc[j - j0]);
  }
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int64_t, int64_t,
                                     double);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int64_t,
                                      int64_t, double);
template void rmsnorm_apply<float>(float*, const float*, const float*, const float*, int64_t,
                                   int64_t);
template void rmsnorm_apply<double>(double*, const double*, const double*, const double*, int64_t,
                                    int64_t);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*,
                                      const float*, int64_t, int64_t);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*,
                                       const double*, const double*, int64_t, int64_t);

}  // namespace lomo
