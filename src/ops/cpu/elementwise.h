// Small element-wise ops of the model on the CPU: the residual add and a linear layer's bias
// (the backend ops of the same names: ops/backend.h).
#pragma once

#include <cstdint>

namespace lomo {

// y(n) += x(n)
void add_inplace(float* y, const float* x, int64_t n);
// y(n) = beta·y + alpha · keep ⊙ x / (1 − p), keep = dropout_keeps(key, i, p) (core/rng.h);
// beta = 0 overwrites y without reading it.
void dropout_rows(float* y, const float* x, int64_t n, float p, float alpha, float beta,
                  uint64_t key);
// Y(N, out): every row ← b(out)
void bias_rows(float* Y, const float* b, int64_t N, int64_t out);
// db(out) ← Σ_n dY(N, out), accumulated in fp64
void bias_grad(float* db, const float* dY, int64_t N, int64_t out);

}  // namespace lomo
