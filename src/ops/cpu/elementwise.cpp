#include "ops/cpu/elementwise.h"

#include "ops/element/dropout.h"

namespace lomo {

void add_inplace(float* y, const float* x, int64_t n) {
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void dropout_rows(float* y, const float* x, int64_t n, float p, float alpha, float beta,
                  uint64_t key) {
  const float a = dropout_scale(p, alpha);
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) {
    const float v = dropout_value(x[i], a, key, i, p);
    y[i] = beta == 0.0f ? v : beta * y[i] + v;
  }
}

void bias_rows(float* Y, const float* b, int64_t N, int64_t out) {
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t o = 0; o < out; ++o) Y[n * out + o] = b[o];
  }
}

void bias_grad(float* db, const float* dY, int64_t N, int64_t out) {
#pragma omp parallel for
  for (int64_t o = 0; o < out; ++o) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) s += dY[n * out + o];
    db[o] = static_cast<float>(s);
  }
}

}  // namespace lomo
