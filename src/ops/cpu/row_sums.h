// Reductions of short rows (a key block of attention: up to 64 entries) with the fixed order the
// kernels' determinism needs. The fp32 sums are taken in fp64, as the softmax sums elsewhere. With
// AVX-512, lanes of 8 doubles and one horizontal reduction per row: an `omp simd` reduction over a
// float row into a double compiles to a chain of 16 scalar adds per row, a quarter of the row's
// product time in the fused attention.
#pragma once

#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace lomo {

// max_j x[j], n ≥ 1.
inline double row_max(const double* x, int64_t n) {
  double m = x[0];
  for (int64_t j = 1; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

// Σ_j x[j] in fp64.
inline double sum_fp64(const double* x, int64_t n) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += x[j];
  return s;
}

// Σ_j x[j]·y[j] in fp64.
inline double dot_fp64(const double* x, const double* y, int64_t n) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += x[j] * y[j];
  return s;
}

#if defined(__AVX512F__)

// The masked forms with an explicit source throughout: GCC 12 warns falsely (maybe-uninitialized)
// inside the unmasked intrinsics that pass an undefined source (max, shuffles, permutes,
// conversions, _mm512_reduce_*), and warnings are errors here.
inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

// x[j … j + 16) ∩ [0, n) as two vectors of 8 doubles (0 past n).
inline void load_as_doubles(const float* x, int64_t j, int64_t n, __m512d& lo, __m512d& hi) {
  const unsigned m = tail_mask(n - j);
  const __m512d zero = _mm512_setzero_pd();
  lo = _mm512_mask_cvtps_pd(zero, 0xFF,
                            _mm256_maskz_loadu_ps(static_cast<__mmask8>(m & 0xFF), x + j));
  hi = _mm512_mask_cvtps_pd(zero, 0xFF,
                            _mm256_maskz_loadu_ps(static_cast<__mmask8>(m >> 8), x + j + 8));
}

// The 8 lanes' sum, in a fixed order.
inline double lane_sum(__m512d v) {
  v = _mm512_add_pd(v, _mm512_mask_shuffle_f64x2(v, 0xFF, v, v, 0x4E));  // + the other 256 bits
  v = _mm512_add_pd(v, _mm512_mask_shuffle_f64x2(v, 0xFF, v, v, 0xB1));  // + the neighbouring 128 bits
  v = _mm512_add_pd(v, _mm512_mask_permute_pd(v, 0xFF, v, 0x55));        // + the other double of each pair
  return _mm512_cvtsd_f64(v);
}

inline float row_max(const float* x, int64_t n) {
  __m512 m = _mm512_set1_ps(x[0]);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 k = tail_mask(n - j);
    m = _mm512_mask_max_ps(m, k, m, _mm512_maskz_loadu_ps(k, x + j));
  }
  constexpr __mmask16 all = 0xFFFF;
  m = _mm512_mask_max_ps(m, all, m, _mm512_mask_shuffle_f32x4(m, all, m, m, 0x4E));
  m = _mm512_mask_max_ps(m, all, m, _mm512_mask_shuffle_f32x4(m, all, m, m, 0xB1));
  m = _mm512_mask_max_ps(m, all, m, _mm512_mask_permute_ps(m, all, m, 0x4E));
  m = _mm512_mask_max_ps(m, all, m, _mm512_mask_permute_ps(m, all, m, 0xB1));
  return _mm512_cvtss_f32(m);
}

inline double sum_fp64(const float* x, int64_t n) {
  __m512d s = _mm512_setzero_pd();
  for (int64_t j = 0; j < n; j += 16) {
    __m512d lo, hi;
    load_as_doubles(x, j, n, lo, hi);
    s = _mm512_add_pd(s, _mm512_add_pd(lo, hi));
  }
  return lane_sum(s);
}

inline double dot_fp64(const float* x, const float* y, int64_t n) {
  __m512d s = _mm512_setzero_pd(), t = _mm512_setzero_pd();
  for (int64_t j = 0; j < n; j += 16) {
    __m512d xl, xh, yl, yh;
    load_as_doubles(x, j, n, xl, xh);
    load_as_doubles(y, j, n, yl, yh);
    s = _mm512_fmadd_pd(xl, yl, s);
    t = _mm512_fmadd_pd(xh, yh, t);
  }
  return lane_sum(_mm512_add_pd(s, t));
}

#else

inline float row_max(const float* x, int64_t n) {
  float m = x[0];
  for (int64_t j = 1; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

inline double sum_fp64(const float* x, int64_t n) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += x[j];
  return s;
}

inline double dot_fp64(const float* x, const float* y, int64_t n) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += static_cast<double>(x[j]) * y[j];
  return s;
}

#endif

}  // namespace lomo
