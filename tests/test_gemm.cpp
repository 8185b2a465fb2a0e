// oneDNN's sgemm and bf16 matmul against the naive reference, for every transpose combination,
// odd sizes, strided leading dimensions, alpha and beta.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "core/half.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/gemm_bf16.h"

namespace lomo {
namespace {

TEST(Gemm, MatchesReferenceForAllLayouts) {
  const int64_t M = 37, N = 29, K = 53;
  for (Trans ta : {Trans::No, Trans::Yes}) {
    for (Trans tb : {Trans::No, Trans::Yes}) {
      const int64_t lda = (ta == Trans::No ? K : M) + 3;
      const int64_t ldb = (tb == Trans::No ? N : K) + 5;
      const int64_t ldc = N + 2;
      std::vector<float> A((ta == Trans::No ? M : K) * lda), B((tb == Trans::No ? K : N) * ldb);
      std::vector<float> C(M * ldc), R(M * ldc);
      for (size_t i = 0; i < A.size(); ++i) A[i] = static_cast<float>(counter_normal(1, 1, i));
      for (size_t i = 0; i < B.size(); ++i) B[i] = static_cast<float>(counter_normal(1, 2, i));
      for (size_t i = 0; i < C.size(); ++i)
        C[i] = R[i] = static_cast<float>(counter_normal(1, 3, i));
      gemm(ta, tb, M, N, K, 0.7f, A.data(), lda, B.data(), ldb, 0.3f, C.data(), ldc);
      gemm_ref(ta, tb, M, N, K, 0.7f, A.data(), lda, B.data(), ldb, 0.3f, R.data(), ldc);
      for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) {
          // K = 53 products of N(0,1) values: |C| ~ 7; fp32 accumulation error ≲ K·eps·|a||b|.
          ASSERT_NEAR(C[i * ldc + j], R[i * ldc + j], 1e-4f)
              << "ta=" << (ta == Trans::Yes) << " tb=" << (tb == Trans::Yes) << " at " << i << ","
              << j;
        }
        // Columns beyond N (the ldc padding) must be untouched.
        for (int64_t j = N; j < ldc; ++j) ASSERT_EQ(C[i * ldc + j], R[i * ldc + j]);
      }
    }
  }
}

// bf16 operands: the reference multiplies the same bf16 values in double, so only the fp32
// accumulation differs. Two alphas and betas: the primitive cache keys on them.
TEST(Gemm, Bf16MatchesReferenceForAllLayouts) {
  const int64_t M = 37, N = 29, K = 53;
  for (Trans ta : {Trans::No, Trans::Yes}) {
    for (Trans tb : {Trans::No, Trans::Yes}) {
      for (auto [alpha, beta] : {std::pair{0.7f, 0.3f}, std::pair{1.0f, 0.0f}}) {
        const int64_t lda = (ta == Trans::No ? K : M) + 3;
        const int64_t ldb = (tb == Trans::No ? N : K) + 5;
        const int64_t ldc = N + 2;
        std::vector<uint16_t> A((ta == Trans::No ? M : K) * lda), B((tb == Trans::No ? K : N) * ldb);
        std::vector<float> A32(A.size()), B32(B.size()), C(M * ldc), R(M * ldc);
        for (size_t i = 0; i < A.size(); ++i) {
          A[i] = f32_to_bf16(static_cast<float>(counter_normal(2, 1, i)));
          A32[i] = bf16_to_f32(A[i]);
        }
        for (size_t i = 0; i < B.size(); ++i) {
          B[i] = f32_to_bf16(static_cast<float>(counter_normal(2, 2, i)));
          B32[i] = bf16_to_f32(B[i]);
        }
        for (size_t i = 0; i < C.size(); ++i)
          C[i] = R[i] = static_cast<float>(counter_normal(2, 3, i));
        gemm_bf16(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
        gemm_ref(ta, tb, M, N, K, alpha, A32.data(), lda, B32.data(), ldb, beta, R.data(), ldc);
        for (int64_t i = 0; i < M; ++i) {
          for (int64_t j = 0; j < N; ++j) {
            ASSERT_NEAR(C[i * ldc + j], R[i * ldc + j], 1e-4f)
                << "ta=" << (ta == Trans::Yes) << " tb=" << (tb == Trans::Yes) << " alpha=" << alpha
                << " at " << i << "," << j;
          }
          for (int64_t j = N; j < ldc; ++j) ASSERT_EQ(C[i * ldc + j], R[i * ldc + j]);
        }
      }
    }
  }
}

}  // namespace
}  // namespace lomo
