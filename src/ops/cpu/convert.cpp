#include "ops/cpu/convert.h"

#include <algorithm>

#include "core/half.h"
#include "core/rng.h"
#include "ops/element/normal.h"
#include "ops/element/update.h"

namespace lomo {

void to_f32(float* dst, ParamView src, int64_t begin, int64_t n) {
  if (src.dtype == StorageDtype::F32) {
    std::copy(src.f32() + begin, src.f32() + begin + n, dst);
    return;
  }
  const uint16_t* h = src.u16() + begin;
  if (src.dtype == StorageDtype::F16) {
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(h[i]);
    return;
  }
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
}

void to_bf16(uint16_t* dst, const float* src, int64_t n) {
#pragma omp parallel for simd
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

void store_rounded(ParamView p, const float* w32, const RoundingMode& r) {
  store_rounded(p, w32, r, 0, p.numel());
}

void store_rounded(ParamView p, const float* w32, const RoundingMode& r, int64_t begin,
                   int64_t n) {
  if (p.dtype == StorageDtype::F32) {
    if (w32 != p.f32() + begin) std::copy(w32, w32 + n, p.f32() + begin);
    return;
  }
  // store16 per element, with its branches and the random stream's key out of the loops.
  uint16_t* dst = p.u16() + begin;
  if (p.dtype == StorageDtype::F16) {
#pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(w32[i]);
  } else if (r.rounding == Rounding::Nearest) {
#pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(w32[i]);
  } else {
    const uint64_t key = rounding_key(r, p.id);
#pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) {
      dst[i] = element::bf16_stochastic(w32[i], key, p.first + begin + i);
    }
  }
}

void fill(float* x, float value, int64_t n) { std::fill(x, x + n, value); }

void fill_normal(float* x, int64_t n, uint64_t seed, uint64_t stream, double stddev,
                 int64_t first) {
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) {
    x[i] = element::normal(seed, stream, static_cast<uint64_t>(first + i), stddev);
  }
}

}  // namespace lomo
