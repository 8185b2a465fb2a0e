// bf16 matrix products with fp32 results, for bf16 training (`--bf16-gemm on`): the same
// row-major convention as gemm() (ops/cpu/gemm.h),
//   C(M,N) = alpha · op(A)(M,K) · op(B)(K,N) + beta · C,   A, B bf16;  C fp32,
// through oneDNN's matmul primitive, which picks its AVX-512-BF16 kernel where the CPU has one
// (about 2x the fp32 GEMM rate on the development machine: docs/performance.md). Products
// accumulate in fp32; the inputs are what they are, bf16. On a CPU without AVX-512, where
// oneDNN 2.6 has no bf16 matmul, the operands are widened to fp32 panel by panel and multiplied
// by the fp32 GEMM: the same products, summed in another order, at the fp32 rate. One primitive per shape is created on
// first use and kept (a training step repeats the same dozen shapes).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/cpu/gemm.h"

namespace lomo {

// Whether oneDNN has a bf16 matmul on this CPU (2.6, Debian 12's, implements it only with
// AVX-512); without one gemm_bf16 widens its operands to fp32.
bool bf16_matmul_available();

// The primitives this thread has made (one per shape and per whether alpha ≠ 1 and beta ≠ 0;
// never per value of alpha or beta).
size_t bf16_primitives_made();

void gemm_bf16(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A,
               int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace lomo
