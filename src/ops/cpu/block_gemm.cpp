#include "ops/cpu/block_gemm.h"

#include <algorithm>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace lomo {

namespace {

// Any type, any shape: one C row at a time, the row's N sums kept in C itself.
template <class T>
void block_gemm_plain(Accumulate acc, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                      int64_t a_rs, int64_t a_cs, const T* B, int64_t ldb, T* C, int64_t ldc) {
  constexpr int64_t kCols = 64;
  T sum[kCols];
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t n0 = 0; n0 < N; n0 += kCols) {
      const int64_t nn = std::min(kCols, N - n0);
      for (int64_t n = 0; n < nn; ++n) sum[n] = 0;
      for (int64_t k = 0; k < K; ++k) {
        const T a = A[i * a_rs + k * a_cs];
        const T* b = B + k * ldb + n0;
#pragma omp simd
        for (int64_t n = 0; n < nn; ++n) sum[n] += a * b[n];
      }
      T* c = C + i * ldc + n0;
      if (acc == Accumulate::Yes) {
        for (int64_t n = 0; n < nn; ++n) c[n] += alpha * sum[n];
      } else {
        for (int64_t n = 0; n < nn; ++n) c[n] = alpha * sum[n];
      }
    }
  }
}

#if defined(__AVX512F__)

// C rows [0, MR) × columns [0, 16·NV) (the last vector masked by `last`) of one register tile.
template <int MR, int NV>
inline void tile(Accumulate acc, int64_t K, float alpha, const float* A, int64_t a_rs, int64_t a_cs,
                 const float* B, int64_t ldb, float* C, int64_t ldc, __mmask16 last) {
  __m512 c[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) c[i][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m512 b[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const __mmask16 m = v == NV - 1 ? last : __mmask16(0xFFFF);
      b[v] = _mm512_maskz_loadu_ps(m, B + k * ldb + 16 * v);
    }
    const float* a = A + k * a_cs;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i * a_rs]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) c[i][v] = _mm512_fmadd_ps(ai, b[v], c[i][v]);
    }
  }
  const __m512 al = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const __mmask16 m = v == NV - 1 ? last : __mmask16(0xFFFF);
      float* p = C + i * ldc + 16 * v;
      __m512 r = _mm512_mul_ps(al, c[i][v]);
      if (acc == Accumulate::Yes) r = _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), r);
      _mm512_mask_storeu_ps(p, m, r);
    }
  }
}

template <int NV>
void column_panel(Accumulate acc, int64_t M, int64_t K, float alpha, const float* A, int64_t a_rs,
                  int64_t a_cs, const float* B, int64_t ldb, float* C, int64_t ldc,
                  __mmask16 last) {
  constexpr int64_t kMr = 6;
  int64_t i = 0;
  for (; i + kMr <= M; i += kMr)
    tile<kMr, NV>(acc, K, alpha, A + i * a_rs, a_rs, a_cs, B, ldb, C + i * ldc, ldc, last);
  const float* a = A + i * a_rs;
  float* c = C + i * ldc;
  switch (M - i) {
    case 5: tile<5, NV>(acc, K, alpha, a, a_rs, a_cs, B, ldb, c, ldc, last); break;
    case 4: tile<4, NV>(acc, K, alpha, a, a_rs, a_cs, B, ldb, c, ldc, last); break;
    case 3: tile<3, NV>(acc, K, alpha, a, a_rs, a_cs, B, ldb, c, ldc, last); break;
    case 2: tile<2, NV>(acc, K, alpha, a, a_rs, a_cs, B, ldb, c, ldc, last); break;
    case 1: tile<1, NV>(acc, K, alpha, a, a_rs, a_cs, B, ldb, c, ldc, last); break;
    default: break;
  }
}

#endif

}  // namespace

template <>
void block_gemm<double>(Accumulate acc, int64_t M, int64_t N, int64_t K, double alpha,
                        const double* A, int64_t a_rs, int64_t a_cs, const double* B, int64_t ldb,
                        double* C, int64_t ldc) {
  block_gemm_plain(acc, M, N, K, alpha, A, a_rs, a_cs, B, ldb, C, ldc);
}

template <>
void block_gemm<float>(Accumulate acc, int64_t M, int64_t N, int64_t K, float alpha,
                       const float* A, int64_t a_rs, int64_t a_cs, const float* B, int64_t ldb,
                       float* C, int64_t ldc) {
#if defined(__AVX512F__)
  // Column panels of 64 (four vectors), the last one narrower; its last vector masked.
  for (int64_t n0 = 0; n0 < N; n0 += 64) {
    const int64_t nn = std::min<int64_t>(64, N - n0);
    const int nv = static_cast<int>((nn + 15) / 16);
    const int rem = static_cast<int>(nn - 16 * (nv - 1));
    const auto last = static_cast<__mmask16>(rem == 16 ? 0xFFFF : (1u << rem) - 1);
    const float* b = B + n0;
    float* c = C + n0;
    switch (nv) {
      case 4: column_panel<4>(acc, M, K, alpha, A, a_rs, a_cs, b, ldb, c, ldc, last); break;
      case 3: column_panel<3>(acc, M, K, alpha, A, a_rs, a_cs, b, ldb, c, ldc, last); break;
      case 2: column_panel<2>(acc, M, K, alpha, A, a_rs, a_cs, b, ldb, c, ldc, last); break;
      default: column_panel<1>(acc, M, K, alpha, A, a_rs, a_cs, b, ldb, c, ldc, last); break;
    }
  }
#else
  block_gemm_plain(acc, M, N, K, alpha, A, a_rs, a_cs, B, ldb, C, ldc);
#endif
}

}  // namespace lomo
