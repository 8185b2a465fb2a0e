// Small products on cache-resident blocks, for the fused attention kernel (ops/cpu/attention.cpp):
// blocks of a few hundred rows by 64 keys or head_dim columns, called hundreds of thousands of
// times a step. Against oneDNN's sgemm called per block (2026-12-01, one thread, loaded machine)
// the attention passes took the same time within the noise; this kernel is kept because it reads
// a transposed operand through strides and has no library call or dispatch per block.
//
//   C(M,N) = alpha · A(M,K) · B(K,N)  [+ C when Accumulate::Yes]
//
// A is read through two strides, A(i,k) = A[i·a_rs + k·a_cs], so a transposed operand costs
// nothing (a_rs = 1, a_cs = its row stride). B and C are row-major with row strides ldb, ldc.
// Each C element is one fp32 (or fp64) sum over k in increasing order, then scaled by alpha and
// added to C: the same order whatever the thread or the block's place, so results are
// deterministic. Float with AVX-512: register tiles of 6 rows × up to 64 columns (24 zmm
// accumulators), the last 16-column vector masked; otherwise a plain loop the compiler vectorises.
#pragma once

#include <cstdint>

namespace lomo {

enum class Accumulate { No, Yes };

template <class T>
void block_gemm(Accumulate acc, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t a_rs,
                int64_t a_cs, const T* B, int64_t ldb, T* C, int64_t ldc);

}  // namespace lomo
