// The optimizers' per-tensor arithmetic on the CPU: gradient checks, clipping, and the LOMO/SGD,
// AdaLomo and AdamW updates (the backend ops of the same names: ops/backend.h, whose structs
// carry the coefficients). Each update reads parameter and gradient, computes in fp32 (fp64 in
// reductions) and writes the parameter back once (design §2 rule 5).
#pragma once

#include <cstdint>

#include "ops/backend.h"

namespace lomo {

// g(n) clamped to [−v, v] in place; v ≤ 0: nothing.
void clip_by_value(float* g, int64_t n, float v);
// Whether every g(n) is finite; whether some |g_i| > limit or is NaN.
bool all_finite(const float* g, int64_t n);
bool any_beyond(const float* g, int64_t n, float limit);
// Σ g(n)² in fp64.
double sum_squares(const float* g, int64_t n);
// p(rows, cols) ← p·keep − step·g(rows·cols).
void sgd_update(ParamView p, const float* g, const SgdStep& s);
// p(rows, cols) from g(rows·cols), scratch, overwritten; row(rows), col(cols) for a matrix
// (col null: a vector, row(n)).
void adalomo_update(ParamView p, float* g, float* row, float* col, const AdaLomoStep& s);
// p(n) fp32 from g(n), moments m(n), v(n) updated in place.
void adamw_update(ParamView p, const float* g, float* m, float* v, const AdamWStep& s);

}  // namespace lomo
