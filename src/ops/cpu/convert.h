// Conversions between fp32 compute and 16-bit storage on the CPU, and the fills (the backend
// ops of the same names: ops/backend.h).
#pragma once

#include <cstdint>

#include "core/rounding.h"
#include "ops/tensor.h"

namespace lomo {

// dst(n) ← elements [begin, begin + n) of src as fp32.
void to_f32(float* dst, ParamView src, int64_t begin, int64_t n);
// dst(n) ← src(n) rounded to nearest-even bf16.
void to_bf16(uint16_t* dst, const float* src, int64_t n);
// x(n) ← its bf16 codes in its first 2n bytes (Backend::to_bf16_in_place).
void to_bf16_in_place(float* x, int64_t n);
// p ← w32 in p's storage (nothing for fp32 when w32 is p's own storage).
void store_rounded(ParamView p, const float* w32, const RoundingMode& r);
// Elements [begin, begin + n) of p ← w32(n), rounded as if the whole tensor were stored (the
// stochastic stream is keyed by the element's index in p).
void store_rounded(ParamView p, const float* w32, const RoundingMode& r, int64_t begin,
                   int64_t n);
// x(n) ← value.
void fill(float* x, float value, int64_t n);
// x(n) ← stddev · counter_normal(seed, stream, i).
void fill_normal(float* x, int64_t n, uint64_t seed, uint64_t stream, double stddev,
                 int64_t first);

}  // namespace lomo
