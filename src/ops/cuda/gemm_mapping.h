// The row-major Matmul of the codebase (ops/tensor.h) as one column-major BLAS call: the
// convention of the CUDA backend's GEMM, written down here and nowhere else (style.md habit 4).
//
// A row-major (R, S) matrix with leading dimension ld is, byte for byte, the column-major (S, R)
// matrix with the same ld: its transpose. So the row-major product
//   C(M,N) = alpha · op(A)(M,K) · op(B)(K,N) + beta · C
// is, read column-major,
//   Cᵀ(N,M) = alpha · op(B)ᵀ(N,K) · op(A)ᵀ(K,M) + beta · Cᵀ,
// a BLAS call with the operands swapped and the transposes kept:
//   m = N, n = M, k = K; BLAS A = our B (transa = tb, lda = B.ld); BLAS B = our A (transb = ta,
//   ldb = A.ld); BLAS C = our C (ldc).
// Why the transposes are kept: our B with tb = No is stored (K,N) row-major, i.e. (N,K)
// column-major, which already is op(B)ᵀ, so BLAS reads it untransposed; with tb = Yes it is
// stored (N,K) row-major = (K,N) column-major, and BLAS must transpose it to get (N,K).
//
// Pure host code (no CUDA header), so that the CPU-only tests can execute the mapped call with a
// plain column-major loop and compare it with the row-major reference.
#pragma once

#include <cstdint>
#include <string>

#include "ops/tensor.h"

namespace lomo::cuda {

// What the call has to do. K = 0 leaves no product: C = beta·C, which with beta = 0 writes zeros
// (C is not read, so NaN in it must not survive); M = 0 or N = 0 leaves nothing.
enum class GemmWork { None, ScaleC, Product };

// One operand of a column-major BLAS call: `ld` elements between consecutive stored columns.
struct ColMajorOperand {
  const void* data = nullptr;
  StorageDtype dtype = StorageDtype::F32;
  int64_t ld = 0;
};

// C(m,n) = alpha · op(A)(m,k) · op(B)(k,n) + beta · C, every matrix COLUMN-major, exactly BLAS
// semantics (beta = 0: C is written without being read). A is stored (m,k) for Trans::No and
// (k,m) for Trans::Yes; likewise B (k,n) / (n,k). C is fp32.
struct ColMajorGemm {
  GemmWork work = GemmWork::None;
  Trans transa = Trans::No, transb = Trans::No;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f, beta = 0.0f;
  ColMajorOperand A, B;
  float* C = nullptr;
  int64_t ldc = 0;
  Precision precision = Precision::F32;
};

// The column-major call computing `mm`. Throws lomo::Error naming the product's shape and the
// problem for: negative sizes; sizes or leading dimensions beyond int32 (what cuBLASLt accepts);
// an operand dtype the precision does not take (F32: fp32 A and B; BF16: bf16 A and B); a null
// pointer to an operand the call reads or writes; a leading dimension smaller than the stored
// row length of its operand.
ColMajorGemm to_col_major(const Matmul& mm);

// "matmul (M=7, N=5, K=3, ta=No, tb=Yes, lda=3, ldb=3, ldc=5, F32)", for error messages.
std::string describe(const Matmul& mm);
// "column-major gemm (transa=T, transb=N, m=5, n=7, k=3, lda=3, ldb=3, ldc=5, bf16 x bf16 -> f32,
// beta=0)", for the cuBLASLt wrapper's error messages.
std::string describe(const ColMajorGemm& g);

}  // namespace lomo::cuda
