#include "ops/cpu/gemv.h"

#include <omp.h>

#include <cstring>
#include <vector>

#if defined(__AVX512BF16__)
#include <immintrin.h>
#endif

namespace lomo {

namespace {

inline float widen(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline void store(float* y, int64_t n, float alpha, float beta, float acc) {
  y[n] = beta == 0.0f ? alpha * acc : alpha * acc + beta * y[n];
}

// Rows [n0, n1) of y from fp32 x(K) and rows of W given by `row(n, k)`, four rows at a time.
template <class Row>
void band(int64_t n0, int64_t n1, int64_t K, float alpha, const float* x, float beta, float* y,
          Row row) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) {
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
    for (int64_t k = 0; k < K; ++k) {
      a0 += x[k] * row(n, k);
      a1 += x[k] * row(n + 1, k);
      a2 += x[k] * row(n + 2, k);
      a3 += x[k] * row(n + 3, k);
    }
    store(y, n, alpha, beta, a0);
    store(y, n + 1, alpha, beta, a1);
    store(y, n + 2, alpha, beta, a2);
    store(y, n + 3, alpha, beta, a3);
  }
  for (; n < n1; ++n) {
    float a = 0;
#pragma omp simd reduction(+ : a)
    for (int64_t k = 0; k < K; ++k) a += x[k] * row(n, k);
    store(y, n, alpha, beta, a);
  }
}

// Each thread takes one contiguous band of rows (W is read once, front to back per thread).
template <class Row>
void run(int64_t N, int64_t K, float alpha, const float* x, float beta, float* y, Row row) {
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    band(N * t / nt, N * (t + 1) / nt, K, alpha, x, beta, y, row);
  }
}

}  // namespace

void gemv_f32(int64_t N, int64_t K, float alpha, const float* x, const float* W, int64_t ldw,
              float beta, float* y) {
  run(N, K, alpha, x, beta, y, [=](int64_t n, int64_t k) { return W[n * ldw + k]; });
}

#if defined(__AVX512BF16__)
// GCC 12 reports the intrinsics' own undefined-vector idiom (_mm512_undefined) as maybe
// uninitialised; the values are all written.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace {

// Rows [n0, n1) with AVX-512-BF16's dot product (vdpbf16ps: 32 bf16 pairs into 16 fp32 sums,
// the instruction oneDNN's bf16 kernels use), four rows at a time; a masked load takes the tail.
void band_dpbf16(int64_t n0, int64_t n1, int64_t K, float alpha, const uint16_t* x,
                 const uint16_t* W, int64_t ldw, float beta, float* y) {
  const int64_t full = K / 32 * 32;
  const auto tail = static_cast<__mmask32>((uint64_t{1} << (K - full)) - 1);
  auto load = [&](const uint16_t* p, int64_t k) {
    return k < full ? (__m512bh)_mm512_loadu_si512(p + k)
                    : (__m512bh)_mm512_maskz_loadu_epi16(tail, p + k);
  };
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) {
    const uint16_t* w = W + n * ldw;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    // The next four rows' lines, requested while these are summed: a bf16 row is half an fp32
    // row, too short for the hardware prefetcher to ramp up on each new row by itself.
    const uint16_t* next = n + 8 <= n1 ? w + 4 * ldw : w;
    for (int64_t k = 0; k < K; k += 32) {
      _mm_prefetch(reinterpret_cast<const char*>(next + k), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(next + ldw + k), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(next + 2 * ldw + k), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(next + 3 * ldw + k), _MM_HINT_T0);
      const __m512bh xv = load(x, k);
      a0 = _mm512_dpbf16_ps(a0, xv, load(w, k));
      a1 = _mm512_dpbf16_ps(a1, xv, load(w + ldw, k));
      a2 = _mm512_dpbf16_ps(a2, xv, load(w + 2 * ldw, k));
      a3 = _mm512_dpbf16_ps(a3, xv, load(w + 3 * ldw, k));
    }
    store(y, n, alpha, beta, _mm512_reduce_add_ps(a0));
    store(y, n + 1, alpha, beta, _mm512_reduce_add_ps(a1));
    store(y, n + 2, alpha, beta, _mm512_reduce_add_ps(a2));
    store(y, n + 3, alpha, beta, _mm512_reduce_add_ps(a3));
  }
  for (; n < n1; ++n) {
    __m512 a = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 32) a = _mm512_dpbf16_ps(a, load(x, k), load(W + n * ldw, k));
    store(y, n, alpha, beta, _mm512_reduce_add_ps(a));
  }
}

}  // namespace

void gemv_bf16(int64_t N, int64_t K, float alpha, const uint16_t* x, const uint16_t* W, int64_t ldw,
               float beta, float* y) {
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    band_dpbf16(N * t / nt, N * (t + 1) / nt, K, alpha, x, W, ldw, beta, y);
  }
}
#pragma GCC diagnostic pop
#else
void gemv_bf16(int64_t N, int64_t K, float alpha, const uint16_t* x, const uint16_t* W, int64_t ldw,
               float beta, float* y) {
  std::vector<float> x32(static_cast<size_t>(K));  // (K) x widened once
  for (int64_t k = 0; k < K; ++k) x32[k] = widen(x[k]);
  run(N, K, alpha, x32.data(), beta, y,
      [=](int64_t n, int64_t k) { return widen(W[n * ldw + k]); });
}
#endif

}  // namespace lomo
