// The matrix–vector products of decoding (ops/cpu/gemv.h) against the naive reference gemm_ref
// in fp64, through the backend's matmul (M = 1, B transposed: the route every decoded token's
// products take), with row strides, beta = 0 over NaN (y not read) and beta = 1 (accumulate).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/gemv.h"
#include "test_run.h"

namespace lomo {
namespace {

uint16_t to_bf16_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return static_cast<uint16_t>((b + 0x7fff + ((b >> 16) & 1)) >> 16);
}

TEST(Gemv, MatchesReferenceInFp32AndBf16) {
  std::mt19937 g(9);
  std::normal_distribution<float> d(0.f, 1.f);
  const auto be = test::make_test_backend(test::TestBackend::NanFill);
  for (const int64_t N : {1, 7, 64, 1003}) {
    for (const int64_t K : {1, 33, 576}) {
      const int64_t ld = K + 5;  // rows of W padded: the stride must be honoured
      std::vector<float> x(K), W(N * ld, NAN);
      for (auto& v : x) v = d(g);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) W[n * ld + k] = d(g);
      // bf16 operands, and their exact fp32 values for the reference.
      std::vector<uint16_t> x16(K), W16(N * ld, 0x7fc0);
      std::vector<float> xr(K), Wr(N * ld, NAN);
      for (int64_t k = 0; k < K; ++k) xr[k] = bf16_to_f32(x16[k] = to_bf16_bits(x[k]));
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k)
          Wr[n * ld + k] = bf16_to_f32(W16[n * ld + k] = to_bf16_bits(W[n * ld + k]));
      for (const bool bf16 : {false, true}) {
        for (const float beta : {0.0f, 1.0f}) {
          std::vector<double> ref(N, 0.25), xd(K), Wd(N * ld);
          for (int64_t k = 0; k < K; ++k) xd[k] = bf16 ? xr[k] : x[k];
          for (int64_t i = 0; i < N * ld; ++i) Wd[i] = bf16 ? Wr[i] : W[i];
          gemm_ref<double>(Trans::No, Trans::Yes, 1, N, K, 0.5, xd.data(), K, Wd.data(), ld, beta,
                           ref.data(), N);
          std::vector<float> y(N, beta == 0.0f ? NAN : 0.25f);
          Matmul m{.ta = Trans::No,
                   .tb = Trans::Yes,
                   .M = 1,
                   .N = N,
                   .K = K,
                   .alpha = 0.5f,
                   .A = bf16 ? MatRef::bf16(x16.data(), K) : MatRef::f32(x.data(), K),
                   .B = bf16 ? MatRef::bf16(W16.data(), ld) : MatRef::f32(W.data(), ld),
                   .beta = beta,
                   .C = y.data(),
                   .ldc = N,
                   .precision = bf16 ? Precision::BF16 : Precision::F32};
          be->matmul(m);
          // fp32 sums of K products of size ~1: error ~ K·2^-24·√K at worst; 1e-5·√K absolute.
          for (int64_t n = 0; n < N; ++n) {
            ASSERT_NEAR(y[n], ref[n], 1e-5 * std::sqrt(static_cast<double>(K)) + 1e-6)
                << (bf16 ? "bf16" : "fp32") << " N=" << N << " K=" << K << " beta=" << beta
                << " row " << n;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace lomo
