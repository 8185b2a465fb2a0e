// oneDNN's sgemm and bf16 matmul against the naive reference, for every transpose combination,
// odd sizes, strided leading dimensions, alpha and beta.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "core/half.h"
#include "ops/backend.h"
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
      for (auto [alpha, beta] :
           {std::pair{0.7f, 0.3f}, std::pair{1.0f, 0.0f}, std::pair{-0.01f, 1.0f}}) {
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

// LOMO's fused update gives every step its own alpha (−lr·c) and beta (1 − lr·wd). One
// primitive serves them all: a primitive per value left a JIT kernel per value in oneDNN's
// global cache, and a run grew ~2.7 MiB per step (2026-12-02).
TEST(Gemm, Bf16PrimitivesDoNotMultiplyWithAlphaAndBeta) {
  if (!bf16_matmul_available()) GTEST_SKIP() << "no oneDNN bf16 matmul on this CPU (widened path)";
  const int64_t M = 19, N = 23, K = 31;
  std::vector<uint16_t> A(M * K), B(N * K);
  std::vector<float> A32(A.size()), B32(B.size());
  for (size_t i = 0; i < A.size(); ++i) A32[i] = bf16_to_f32(A[i] = f32_to_bf16(counter_normal(5, 1, i)));
  for (size_t i = 0; i < B.size(); ++i) B32[i] = bf16_to_f32(B[i] = f32_to_bf16(counter_normal(5, 2, i)));
  size_t made = 0;
  for (int step = 0; step < 40; ++step) {
    const float alpha = -1e-3f * (1.0f - step / 40.0f), beta = 1.0f - 1e-4f * step;
    std::vector<float> C(M * N), R(M * N);
    for (size_t i = 0; i < C.size(); ++i) C[i] = R[i] = static_cast<float>(counter_normal(5, 3, i));
    gemm_bf16(Trans::Yes, Trans::No, M, N, K, alpha, A.data(), M, B.data(), N, beta, C.data(), N);
    gemm_ref(Trans::Yes, Trans::No, M, N, K, alpha, A32.data(), M, B32.data(), N, beta, R.data(), N);
    for (size_t i = 0; i < C.size(); ++i) ASSERT_NEAR(C[i], R[i], 1e-5f) << "step " << step << " at " << i;
    if (step == 0) made = bf16_primitives_made();
  }
  EXPECT_EQ(bf16_primitives_made(), made) << "a primitive per alpha or beta";
}

// K = 0 (an empty inner dimension): no product, C = beta·C; beta = 0 overwrites C without
// reading it (a NaN there included). oneDNN's sgemm refused K = 0 before the backend handled it.
TEST(Gemm, EmptyInnerDimensionScalesOrOverwritesC) {
  auto cpu = make_backend({.device = "cpu", .threads = 1});
  for (const Precision prec : {Precision::F32, Precision::BF16}) {
    for (const float beta : {0.0f, 0.5f, 1.0f}) {
      const float nan = std::nanf("");
      std::vector<float> C = {1, 2, nan, 4, 5, 6, 7, 8};  // (2, 3) with ldc 4
      const float a = 1, b = 1;
      const uint16_t a16 = 0, b16 = 0;
      Matmul m;
      m.M = 2, m.N = 3, m.K = 0, m.alpha = 0.7f, m.beta = beta, m.C = C.data(), m.ldc = 4;
      m.precision = prec;
      if (prec == Precision::F32) {
        m.A = MatRef::f32(&a, 1);
        m.B = MatRef::f32(&b, 3);
      } else {
        m.A = MatRef::bf16(&a16, 1);
        m.B = MatRef::bf16(&b16, 3);
      }
      cpu->matmul(m);
      for (int64_t i = 0; i < 2; ++i) {
        for (int64_t j = 0; j < 4; ++j) {
          const float was = std::vector<float>{1, 2, nan, 4, 5, 6, 7, 8}[i * 4 + j];
          const float got = C[i * 4 + j];
          if (j == 3) {  // past N: untouched
            EXPECT_EQ(got, was);
          } else if (beta == 0.0f) {
            EXPECT_EQ(got, 0.0f) << i << "," << j;
          } else if (std::isnan(was)) {
            EXPECT_TRUE(std::isnan(got));
          } else {
            EXPECT_EQ(got, beta * was) << i << "," << j;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace lomo
