// Matrix–vector products, the M = 1 case of gemm() (ops/cpu/gemm.h, same row-major convention):
//   y(1, N) = alpha · x(1, K) · W(N, K)ᵀ + beta · y,   W stored (N, K) with row stride ldw.
// This is every product of token-by-token decoding (one row through each linear layer and the LM
// head), where the time is the reading of W: each thread streams its own band of W's rows once,
// with 4 rows in flight, and the sums are fp32 (bf16 operands widened exactly to fp32, as
// oneDNN's bf16 kernels accumulate). oneDNN's general kernels pad M = 1 to a block of rows and
// reached about a third of the memory bandwidth here (docs/performance.md).
// Accumulation rule: OVERWRITES y when beta = 0 (y is not read), else y = alpha·xWᵀ + beta·y.
#pragma once

#include <cstdint>

namespace lomo {

void gemv_f32(int64_t N, int64_t K, float alpha, const float* x, const float* W, int64_t ldw,
              float beta, float* y);
// x and W in bf16; products and sums in fp32.
void gemv_bf16(int64_t N, int64_t K, float alpha, const uint16_t* x, const uint16_t* W, int64_t ldw,
               float beta, float* y);

}  // namespace lomo
