#include "ops/cpu/swiglu.h"

#include <cmath>

#include "ops/cpu/vexp.h"
#include "ops/element/swiglu.h"

namespace lomo {

template <class T>
void swiglu_forward(T* m, const T* g, const T* u, int64_t n) {
#pragma omp parallel for simd
  for (int64_t i = 0; i < n; ++i) {
    const T s = sigmoid_from_exp(vexp(-g[i]));
    m[i] = swiglu_value(g[i], u[i], s);
  }
}

template <class T>
void swiglu_backward(T* dg, T* du, const T* dm, const T* g, const T* u, int64_t n) {
#pragma omp parallel for simd
  for (int64_t i = 0; i < n; ++i) {
    const T gi = g[i], ui = u[i], dmi = dm[i];  // read before dg, du are written (may alias)
    const T s = sigmoid_from_exp(vexp(-gi));
    dg[i] = swiglu_dg(dmi, gi, ui, s);
    du[i] = swiglu_du(dmi, gi, s);
  }
}

template void swiglu_forward<float>(float*, const float*, const float*, int64_t);
template void swiglu_forward<double>(double*, const double*, const double*, int64_t);
template void swiglu_backward<float>(float*, float*, const float*, const float*, const float*,
                                     int64_t);
template void swiglu_backward<double>(double*, double*, const double*, const double*, const double*,
                                      int64_t);

}  // namespace lomo
