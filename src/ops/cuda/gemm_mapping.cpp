#include "ops/cuda/gemm_mapping.h"

#include <limits>
#include <string>

#include "core/error.h"

namespace lomo::cuda {

namespace {

const char* trans_name(Trans t) {
  return t == Trans::No ? "No" : "Yes";
}
const char* blas_trans_name(Trans t) {
  return t == Trans::No ? "N" : "T";
}

const char* dtype_name(StorageDtype t) {
  switch (t) {
    case StorageDtype::F32:
      return "f32";
    case StorageDtype::BF16:
      return "bf16";
    case StorageDtype::F16:
      return "f16";
  }
  return "?";
}

// cuBLASLt takes rows and columns "usually only as int32".
constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();

// Checks one row-major operand the product reads: `name` stored (rows, cols) with leading
// dimension ld.
void check_operand(const Matmul& mm, const char* name, const MatRef& x, int64_t rows,
                   int64_t cols) {
  const std::string shape = "(" + std::to_string(rows) + "," + std::to_string(cols) + ")";
  if (x.data == nullptr) {
    throw Error(describe(mm) + ": " + name + " is a null pointer (stored " + shape + ")");
  }
  if (x.ld < cols) {
    throw Error(describe(mm) + ": ld" + (name[0] == 'A' ? "a" : "b") + " = " +
                std::to_string(x.ld) + " is smaller than " + name + "'s stored row length " +
                std::to_string(cols) + " (" + name + " stored " + shape + " row-major)");
  }
}

}  // namespace

std::string describe(const Matmul& mm) {
  return "matmul (M=" + std::to_string(mm.M) + ", N=" + std::to_string(mm.N) +
         ", K=" + std::to_string(mm.K) + ", ta=" + trans_name(mm.ta) + ", tb=" + trans_name(mm.tb) +
         ", lda=" + std::to_string(mm.A.ld) + ", ldb=" + std::to_string(mm.B.ld) +
         ", ldc=" + std::to_string(mm.ldc) + ", " +
         (mm.precision == Precision::F32 ? "F32" : "BF16") + ")";
}

std::string describe(const ColMajorGemm& g) {
  return std::string("column-major gemm (transa=") + blas_trans_name(g.transa) +
         ", transb=" + blas_trans_name(g.transb) + ", m=" + std::to_string(g.m) +
         ", n=" + std::to_string(g.n) + ", k=" + std::to_string(g.k) +
         ", lda=" + std::to_string(g.A.ld) + ", ldb=" + std::to_string(g.B.ld) +
         ", ldc=" + std::to_string(g.ldc) + ", " + dtype_name(g.A.dtype) + " x " +
         dtype_name(g.B.dtype) + " -> f32, beta" + (g.beta == 0.0f ? "=0" : "!=0") + ")";
}

ColMajorGemm to_col_major(const Matmul& mm) {
  if (mm.M < 0 || mm.N < 0 || mm.K < 0) {
    throw Error(describe(mm) + ": negative size");
  }
  if (mm.M > kMaxDim || mm.N > kMaxDim || mm.K > kMaxDim) {
    throw Error(describe(mm) + ": a size beyond int32, which cuBLASLt does not take");
  }
  const StorageDtype want = mm.precision == Precision::F32 ? StorageDtype::F32 : StorageDtype::BF16;
  if (mm.A.dtype != want || mm.B.dtype != want) {
    throw Error(describe(mm) + ": " +
                (mm.precision == Precision::F32 ? "F32 precision needs fp32 operands"
                                                : "BF16 precision needs bf16 operands") +
                ", got A " + dtype_name(mm.A.dtype) + " and B " + dtype_name(mm.B.dtype));
  }

  ColMajorGemm g;
  g.transa = mm.tb;
  g.transb = mm.ta;
  g.m = mm.N;
  g.n = mm.M;
  g.k = mm.K;
  g.alpha = mm.alpha;
  g.beta = mm.beta;
  g.A = {mm.B.data, mm.B.dtype, mm.B.ld};
  g.B = {mm.A.data, mm.A.dtype, mm.A.ld};
  g.C = mm.C;
  g.ldc = mm.ldc;
  g.precision = mm.precision;
  if (mm.M == 0 || mm.N == 0) {
    g.work = GemmWork::None;
    return g;
  }

  if (mm.C == nullptr) {
    throw Error(describe(mm) + ": C is a null pointer (stored (" + std::to_string(mm.M) + "," +
                std::to_string(mm.N) + "))");
  }
  if (mm.ldc < mm.N) {
    throw Error(describe(mm) + ": ldc = " + std::to_string(mm.ldc) +
                " is smaller than C's stored row length " + std::to_string(mm.N) + " (C stored (" +
                std::to_string(mm.M) + "," + std::to_string(mm.N) + ") row-major)");
  }
  if (mm.K == 0) {
    g.work = GemmWork::ScaleC;
    return g;
  }
  // A is stored (M,K) for No and (K,M) for Yes; B (K,N) for No and (N,K) for Yes.
  if (mm.ta == Trans::No) {
    check_operand(mm, "A", mm.A, mm.M, mm.K);
  } else {
    check_operand(mm, "A", mm.A, mm.K, mm.M);
  }
  if (mm.tb == Trans::No) {
    check_operand(mm, "B", mm.B, mm.K, mm.N);
  } else {
    check_operand(mm, "B", mm.B, mm.N, mm.K);
  }
  g.work = GemmWork::Product;
  return g;
}

}  // namespace lomo::cuda
