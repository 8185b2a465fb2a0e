// The one GEMM entry point of the CPU backend (style.md habit 4).
//
// Convention (written here and nowhere else): every matrix is ROW-MAJOR.
//   C(M,N) = alpha · op(A)(M,K) · op(B)(K,N) + beta · C
// op(X) = X when Trans::No, Xᵀ when Trans::Yes. A is stored (M,K) for Trans::No and (K,M) for
// Trans::Yes; lda is the distance between consecutive stored rows (likewise ldb, ldc).
// In the model: Y = X·Wᵀ is gemm(No, Yes, …) with W stored (out, in) as Hugging Face does.
//
// float goes to oneDNN's sgemm (it detects the CPU's ISA by itself: AVX-512 on the dev machine);
// double and gemm_ref go to a naive triple loop, the reference the fast path is tested against.
#pragma once

#include <cstdint>

#include "ops/tensor.h"

namespace lomo {

void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

template <class T>
void gemm_ref(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
              const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        const T a = ta == Trans::No ? A[i * lda + k] : A[k * lda + i];
        const T b = tb == Trans::No ? B[k * ldb + j] : B[j * ldb + k];
        acc += static_cast<double>(a) * static_cast<double>(b);
      }
      T& c = C[i * ldc + j];
      c = static_cast<T>(alpha * acc + (beta == T(0) ? T(0) : beta * c));
    }
  }
}

inline void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                 int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  gemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace lomo
