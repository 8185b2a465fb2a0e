// The optimizers' per-tensor arithmetic on the CPU: gradient checks, clipping, and the LOMO/SGD,
// AdaLomo and AdamW updates (the backend ops of the same names: ops/backend.h, whose structs
// carry the coefficients). Each update reads parameter and gradient, computes in fp32 (fp64 in
// reductions) and writes the parameter back once (design §2 rule 5).
#pragma once

#include <cstdint>

#include "ops/backend.h"

namespace lomo {

void clip_by_value(float* g, int64_t n, float v);
bool all_finite(const float* g, int64_t n);
bool any_beyond(const float* g, int64_t n, float limit);
double sum_squares(const float* g, int64_t n);
void sgd_update(ParamView p, const float* g, const SgdStep& s);
void adalomo_update(ParamView p, float* g, float* row, float* col, const AdaLomoStep& s);
void adamw_update(ParamView p, const float* g, float* m, float* v, const AdamWStep& s);

}  // namespace lomo
