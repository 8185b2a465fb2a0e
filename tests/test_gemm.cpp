// oneDNN's sgemm against the naive reference, for every transpose combination, odd sizes,
// strided leading dimensions, alpha and beta.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "ops/cpu/gemm.h"

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

}  // namespace
}  // namespace lomo
