#include "ops/cpu/convert.h"

#include <algorithm>
#include <cstddef>
#include <cstring>

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

namespace {

// Elements [a, b) of x converted to bf16 codes at bytes [2a, 2b), through a local copy (memcpy in
// and out: x is read as fp32 and written as bf16 without either access aliasing the other).
void to_bf16_span(std::byte* x, int64_t a, int64_t b) {
  constexpr int64_t kChunk = 512;
  float in[kChunk];
  uint16_t out[kChunk];
  for (int64_t i = a; i < b; i += kChunk) {
    const int64_t n = std::min(kChunk, b - i);
    std::memcpy(in, x + 4 * i, static_cast<size_t>(n) * 4);
    for (int64_t j = 0; j < n; ++j) out[j] = f32_to_bf16(in[j]);
    std::memcpy(x + 2 * i, out, static_cast<size_t>(n) * 2);
  }
}

}  // namespace

void to_bf16_in_place(float* x, int64_t n) {
  // Element i's code goes into fp32 element i/2, which is read before it is written when the
  // elements go in increasing order (a chunk read whole before its codes are written). After a
  // first run in that order, the pieces [s, 2s) are free of order: a piece reads only [s, 2s),
  // which nothing has written yet, and writes fp32 elements [s/2, s), which all came before it.
  auto* bytes = reinterpret_cast<std::byte*>(x);
  const int64_t first = std::min<int64_t>(n, int64_t{1} << 16);
  to_bf16_span(bytes, 0, first);
  constexpr int64_t kPart = 1 << 14;  // elements per task within a piece
  for (int64_t s = first; s < n; s *= 2) {
    const int64_t e = std::min(2 * s, n);
#pragma omp parallel for
    for (int64_t a = s; a < e; a += kPart) to_bf16_span(bytes, a, std::min(a + kPart, e));
  }
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
