// The CUDA backend's GEMM (ops/cuda/gemm.h, ops/cuda/gemm_mapping.h).
//
// CPU-only part (runs everywhere, CI included): the column-major BLAS call that the mapping
// produces is EXECUTED by a plain column-major loop with exactly BLAS semantics, and must give
// the row-major fp64 reference (gemm_ref) bit for bit, for every transpose pair, padded leading
// dimensions, offset views, odd sizes, alpha and beta (beta = 0 over NaN), K = 0, empty outputs
// and bf16 operands; bad Matmuls are lomo::Errors naming the problem.
//
// GPU part (skips without a GPU): the same cases and the model's three products through cuBLASLt
// against the CPU backend, with guard values around every device array.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/rng.h"
#include "cuda_test_util.h"
#include "ops/cpu/gemm.h"
#include "ops/cuda/cublaslt_api.h"
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/gemm.h"
#include "ops/cuda/gemm_mapping.h"

namespace lomo::test {
namespace {

using cuda::ColMajorGemm;
using cuda::ColMajorOperand;
using cuda::GemmWork;

// One product to test. Every stored row of A, B and C has `pad` extra elements (ld > row
// length), and the views start `offset` elements into their buffers (misaligned for offset > 0).
struct Case {
  Trans ta = Trans::No, tb = Trans::No;
  int64_t M = 1, N = 1, K = 1;
  int64_t pad = 0, offset = 0;
  float alpha = 1.0f, beta = 0.0f;
  Precision precision = Precision::F32;
  bool nan_c = false;  // C filled with NaN before the product (with beta = 0 none may survive)
};

std::string name(const Case& c) {
  return std::string("ta=") + (c.ta == Trans::No ? "No" : "Yes") +
         " tb=" + (c.tb == Trans::No ? "No" : "Yes") + " M=" + std::to_string(c.M) +
         " N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) +
         " pad=" + std::to_string(c.pad) + " offset=" + std::to_string(c.offset) +
         " alpha=" + std::to_string(c.alpha) + " beta=" + std::to_string(c.beta) +
         (c.precision == Precision::F32 ? " F32" : " BF16") + (c.nan_c ? " C=NaN" : "");
}

// One case's row-major host data. A is stored (M,K) for ta = No and (K,M) for Yes; B (K,N) for
// No and (N,K) for Yes; C (M,N). Each buffer is offset + rows·ld elements.
struct Operands {
  int64_t lda = 0, ldb = 0, ldc = 0;
  std::vector<float> A, B;         // fp32 values; bf16-representable for BF16 cases
  std::vector<uint16_t> A16, B16;  // the same values as bf16 bits (BF16 cases)
  std::vector<float> C;            // C before the product, padding and prefix included
};

Operands make_operands(const Case& c, uint64_t seed) {
  Operands o;
  const int64_t a_rows = c.ta == Trans::No ? c.M : c.K, a_cols = c.ta == Trans::No ? c.K : c.M;
  const int64_t b_rows = c.tb == Trans::No ? c.K : c.N, b_cols = c.tb == Trans::No ? c.N : c.K;
  o.lda = a_cols + c.pad;
  o.ldb = b_cols + c.pad;
  o.ldc = c.N + c.pad;
  o.A.resize(static_cast<size_t>(c.offset + a_rows * o.lda));  // (a_rows, lda)
  o.B.resize(static_cast<size_t>(c.offset + b_rows * o.ldb));  // (b_rows, ldb)
  o.C.resize(static_cast<size_t>(c.offset + c.M * o.ldc));     // (M, ldc)
  for (size_t i = 0; i < o.A.size(); ++i) o.A[i] = static_cast<float>(counter_normal(seed, 1, i));
  for (size_t i = 0; i < o.B.size(); ++i) o.B[i] = static_cast<float>(counter_normal(seed, 2, i));
  for (size_t i = 0; i < o.C.size(); ++i) {
    o.C[i] = c.nan_c ? std::numeric_limits<float>::quiet_NaN()
                     : static_cast<float>(counter_normal(seed, 3, i));
  }
  if (c.precision == Precision::BF16) {
    o.A16.resize(o.A.size());
    o.B16.resize(o.B.size());
    for (size_t i = 0; i < o.A.size(); ++i) {
      o.A16[i] = f32_to_bf16(o.A[i]);
      o.A[i] = bf16_to_f32(o.A16[i]);
    }
    for (size_t i = 0; i < o.B.size(); ++i) {
      o.B16[i] = f32_to_bf16(o.B[i]);
      o.B[i] = bf16_to_f32(o.B16[i]);
    }
  }
  return o;
}

// The Matmul of case c on buffers A, B, C (host or device) laid out as in `o`.
Matmul matmul_for(const Case& c, const Operands& o, const void* A, const void* B, float* C) {
  const StorageDtype t = c.precision == Precision::F32 ? StorageDtype::F32 : StorageDtype::BF16;
  Matmul m;
  m.ta = c.ta;
  m.tb = c.tb;
  m.M = c.M;
  m.N = c.N;
  m.K = c.K;
  m.alpha = c.alpha;
  m.beta = c.beta;
  m.A = MatRef{A, t, o.lda}.at(0, c.offset);
  m.B = MatRef{B, t, o.ldb}.at(0, c.offset);
  m.C = C + c.offset;
  m.ldc = o.ldc;
  m.precision = c.precision;
  return m;
}

// The host Matmul of case c writing into C (a copy of o.C).
Matmul host_matmul(const Case& c, const Operands& o, std::vector<float>& C) {
  const bool f32 = c.precision == Precision::F32;
  return matmul_for(c, o, f32 ? static_cast<const void*>(o.A.data()) : o.A16.data(),
                    f32 ? static_cast<const void*>(o.B.data()) : o.B16.data(), C.data());
}

// The row-major fp64 reference: o.C with its (M,N) view replaced by gemm_ref's result.
std::vector<float> row_major_expected(const Case& c, const Operands& o) {
  const std::vector<double> A(o.A.begin(), o.A.end()), B(o.B.begin(), o.B.end());
  std::vector<double> C(o.C.begin(), o.C.end());
  gemm_ref<double>(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data() + c.offset, o.lda,
                   B.data() + c.offset, o.ldb, c.beta, C.data() + c.offset, o.ldc);
  std::vector<float> out = o.C;
  for (int64_t i = 0; i < c.M; ++i) {
    for (int64_t j = 0; j < c.N; ++j) {
      const size_t at = static_cast<size_t>(c.offset + i * o.ldc + j);
      out[at] = static_cast<float>(C[at]);
    }
  }
  return out;
}

double load(const ColMajorOperand& x, int64_t at) {
  if (x.dtype == StorageDtype::F32) return static_cast<const float*>(x.data)[at];
  return bf16_to_f32(static_cast<const uint16_t*>(x.data)[at]);
}

// BLAS's GEMM, column-major, plain loops with fp64 accumulation: C(m,n) = alpha·op(A)·op(B) +
// beta·C, A stored (m,k) for No / (k,m) for Yes with lda between columns, likewise B; beta = 0
// does not read C. The same arithmetic, in the same order over k, as gemm_ref, so a correct
// mapping reproduces it bit for bit.
void col_major_gemm_ref(const ColMajorGemm& g) {
  if (g.work == GemmWork::None) return;
  for (int64_t j = 0; j < g.n; ++j) {
    for (int64_t i = 0; i < g.m; ++i) {
      double acc = 0;
      for (int64_t p = 0; p < g.k; ++p) {
        const double a =
            g.transa == Trans::No ? load(g.A, i + p * g.A.ld) : load(g.A, p + i * g.A.ld);
        const double b =
            g.transb == Trans::No ? load(g.B, p + j * g.B.ld) : load(g.B, j + p * g.B.ld);
        acc += a * b;
      }
      float& c = g.C[i + j * g.ldc];
      const double alpha = g.alpha, beta = g.beta;
      c = static_cast<float>(alpha * acc + (beta == 0.0 ? 0.0 : beta * c));
    }
  }
}

uint32_t bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

// Where two buffers laid out as case c's C first differ in their bits, or "" if nowhere.
std::string first_bit_difference(const Case& c, const Operands& o, const std::vector<float>& got,
                                 const std::vector<float>& want) {
  for (size_t at = 0; at < want.size(); ++at) {
    if (bits(got[at]) == bits(want[at])) continue;
    const int64_t e = static_cast<int64_t>(at) - c.offset;
    return "element " + std::to_string(at) + " (row " + std::to_string(e / o.ldc) + ", col " +
           std::to_string(e % o.ldc) + "): got " + std::to_string(got[at]) + ", want " +
           std::to_string(want[at]);
  }
  return "";
}

// Runs the mapped column-major call of case c on the host and compares it with the row-major
// reference, bit for bit, padding and prefix included.
void expect_mapping_matches_reference(const Case& c, uint64_t seed) {
  const Operands o = make_operands(c, seed);
  std::vector<float> got = o.C;
  const ColMajorGemm g = cuda::to_col_major(host_matmul(c, o, got));
  col_major_gemm_ref(g);
  const std::string diff = first_bit_difference(c, o, got, row_major_expected(c, o));
  EXPECT_EQ(diff, "") << name(c);
}

// Every transpose pair × sizes (odd, 1x1x1, larger than a tile edge) × padding and offset ×
// (alpha, beta) with beta ∈ {0 over NaN, 0.5, 1} × precision.
std::vector<Case> product_cases(Precision precision) {
  struct Size {
    int64_t M, N, K;
  };
  struct Scale {
    float alpha, beta;
    bool nan_c;
  };
  std::vector<Case> cases;
  for (Trans ta : {Trans::No, Trans::Yes}) {
    for (Trans tb : {Trans::No, Trans::Yes}) {
      for (Size s : {Size{7, 5, 3}, Size{1, 1, 1}, Size{33, 17, 65}}) {
        for (auto [pad, offset] : {std::pair<int64_t, int64_t>{0, 0}, {3, 1}}) {
          for (Scale k :
               {Scale{0.7f, 0.0f, true}, Scale{-1.3f, 0.5f, false}, Scale{0.7f, 1.0f, false}}) {
            cases.push_back(
                {ta, tb, s.M, s.N, s.K, pad, offset, k.alpha, k.beta, precision, k.nan_c});
          }
        }
      }
    }
  }
  return cases;
}

// K = 0 (C = beta·C; beta = 0 writes zeros over NaN) and empty outputs (nothing is touched).
std::vector<Case> degenerate_cases() {
  std::vector<Case> cases;
  for (Precision p : {Precision::F32, Precision::BF16}) {
    for (Trans ta : {Trans::No, Trans::Yes}) {
      cases.push_back({ta, Trans::No, 7, 5, 0, 2, 1, 0.7f, 0.0f, p, true});
      cases.push_back({ta, Trans::Yes, 7, 5, 0, 2, 0, 0.7f, 0.5f, p, false});
      cases.push_back({ta, Trans::No, 7, 5, 0, 0, 0, 0.7f, 1.0f, p, false});
      cases.push_back({ta, Trans::Yes, 0, 5, 3, 1, 0, 0.7f, 0.5f, p, false});
      cases.push_back({ta, Trans::No, 4, 0, 3, 2, 0, 0.7f, 0.0f, p, true});
    }
  }
  return cases;
}

// The model's three products (ops/tensor.h), with W (out, in) = (20, 16) and B·T = 12 rows:
// Y = X·Wᵀ {No, Yes}; dX = dY·W {No, No}, overwritten and accumulated; the fused LOMO update
// W ← keep·W − lr·dYᵀX {Yes, No} with C = W. Y = X·Wᵀ in bf16 as well.
std::vector<Case> model_cases(int64_t rows, int64_t in, int64_t out) {
  return {
      {Trans::No, Trans::Yes, rows, out, in, 0, 0, 1.0f, 0.0f, Precision::F32, true},
      {Trans::No, Trans::Yes, rows, out, in, 0, 0, 1.0f, 0.0f, Precision::BF16, true},
      {Trans::No, Trans::No, rows, in, out, 0, 0, 1.0f, 0.0f, Precision::F32, true},
      {Trans::No, Trans::No, rows, in, out, 0, 0, 1.0f, 1.0f, Precision::F32, false},
      {Trans::Yes, Trans::No, out, in, rows, 0, 0, -0.01f, 0.999f, Precision::F32, false},
      {Trans::Yes, Trans::No, out, in, rows, 0, 0, -0.01f, 1.0f, Precision::F32, false},
  };
}

// cuBLASLt is opened at first use (ops/cuda/cublaslt_api.h): the library the toolkit ships opens
// here too, with no GPU, every function the backend calls resolves, and one runs.
TEST(CublasLtLoader, OpensTheLibraryAndResolvesEveryFunction) {
  const CublasLtApi& lt = cublaslt();
#define LOMO_EXPECT_RESOLVED(name) EXPECT_NE(lt.name, nullptr) << #name;
  LOMO_CUBLASLT_FUNCTIONS(LOMO_EXPECT_RESOLVED)
#undef LOMO_EXPECT_RESOLVED
  EXPECT_STREQ(lt.cublasLtGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED), "CUBLAS_STATUS_NOT_SUPPORTED");
  EXPECT_EQ(&cublaslt(), &lt) << "opened once";
  Dl_info where{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(lt.cublasLtCreate), &where), 0);
  std::printf("  cuBLASLt opened from %s\n", where.dli_fname);
}

TEST(CudaGemmMapping, SwapsTheOperandsAndKeepsTheTransposes) {
  const float a[1] = {}, b[1] = {};
  float c[1] = {};
  Matmul m;
  m.ta = Trans::Yes;
  m.tb = Trans::No;
  m.M = 7;
  m.N = 5;
  m.K = 3;
  m.alpha = 0.5f;
  m.beta = 0.25f;
  m.A = MatRef::f32(a, 9);  // stored (K,M) = (3,7)
  m.B = MatRef::f32(b, 6);  // stored (K,N) = (3,5)
  m.C = c;
  m.ldc = 8;
  const ColMajorGemm g = cuda::to_col_major(m);
  EXPECT_EQ(g.work, GemmWork::Product);
  EXPECT_EQ(g.transa, Trans::No);   // = tb
  EXPECT_EQ(g.transb, Trans::Yes);  // = ta
  EXPECT_EQ(g.m, 5);
  EXPECT_EQ(g.n, 7);
  EXPECT_EQ(g.k, 3);
  EXPECT_EQ(g.A.data, b);
  EXPECT_EQ(g.A.ld, 6);
  EXPECT_EQ(g.B.data, a);
  EXPECT_EQ(g.B.ld, 9);
  EXPECT_EQ(g.C, c);
  EXPECT_EQ(g.ldc, 8);
  EXPECT_EQ(g.alpha, 0.5f);
  EXPECT_EQ(g.beta, 0.25f);
}

TEST(CudaGemmMapping, Fp32ProductsMatchTheRowMajorReferenceBitForBit) {
  const auto cases = product_cases(Precision::F32);
  ASSERT_EQ(cases.size(), 72u);
  for (size_t i = 0; i < cases.size(); ++i) expect_mapping_matches_reference(cases[i], 100 + i);
}

TEST(CudaGemmMapping, Bf16ProductsMatchTheRowMajorReferenceBitForBit) {
  const auto cases = product_cases(Precision::BF16);
  for (size_t i = 0; i < cases.size(); ++i) expect_mapping_matches_reference(cases[i], 300 + i);
}

TEST(CudaGemmMapping, KZeroScalesCAndEmptyOutputsAreNoWork) {
  for (const Case& c : degenerate_cases()) {
    const Operands o = make_operands(c, 7);
    std::vector<float> C = o.C;
    const ColMajorGemm g = cuda::to_col_major(host_matmul(c, o, C));
    const GemmWork want = c.M == 0 || c.N == 0 ? GemmWork::None
                          : c.K == 0           ? GemmWork::ScaleC
                                               : GemmWork::Product;
    EXPECT_EQ(g.work, want) << name(c);
    expect_mapping_matches_reference(c, 7);
  }
  // K = 0 with beta = 0 over NaN: zeros, not NaN.
  const Case c{Trans::No, Trans::No, 3, 4, 0, 1, 0, 1.0f, 0.0f, Precision::F32, true};
  const Operands o = make_operands(c, 1);
  std::vector<float> C = o.C;
  col_major_gemm_ref(cuda::to_col_major(host_matmul(c, o, C)));
  for (int64_t i = 0; i < c.M; ++i) {
    for (int64_t j = 0; j < c.N; ++j) EXPECT_EQ(bits(C[i * o.ldc + j]), 0u) << i << "," << j;
  }
}

TEST(CudaGemmMapping, ModelProductsMatchTheRowMajorReferenceBitForBit) {
  uint64_t seed = 500;
  for (const Case& c : model_cases(12, 16, 20)) expect_mapping_matches_reference(c, seed++);
}

// A well-formed product to break one field at a time: (7,5,3), ta = No, tb = Yes, F32.
struct GoodMatmul {
  std::vector<float> a = std::vector<float>(7 * 3), b = std::vector<float>(5 * 3),
                     c = std::vector<float>(7 * 5);
  Matmul m() {
    Matmul x;
    x.ta = Trans::No;
    x.tb = Trans::Yes;
    x.M = 7;
    x.N = 5;
    x.K = 3;
    x.A = MatRef::f32(a.data(), 3);  // (M,K)
    x.B = MatRef::f32(b.data(), 3);  // (N,K)
    x.C = c.data();                  // (M,N)
    x.ldc = 5;
    return x;
  }
};

TEST(CudaGemmMapping, BadMatmulsAreErrorsNamingTheProblem) {
  GoodMatmul good;
  EXPECT_NO_THROW(cuda::to_col_major(good.m()));
  struct Bad {
    const char* what;
    std::function<void(Matmul&)> breaks;
    const char* message;
  };
  const std::vector<Bad> bad = {
      {"lda < K", [](Matmul& m) { m.A.ld = 2; }, "lda = 2 is smaller than A's stored row length 3"},
      {"lda < M for ta = Yes",
       [](Matmul& m) {
         m.ta = Trans::Yes;
         m.A.ld = 6;
       },
       "lda = 6 is smaller than A's stored row length 7 (A stored (3,7)"},
      {"ldb < K for tb = Yes", [](Matmul& m) { m.B.ld = 1; },
       "ldb = 1 is smaller than B's stored row length 3 (B stored (5,3)"},
      {"ldb < N for tb = No",
       [](Matmul& m) {
         m.tb = Trans::No;
         m.B.ld = 4;
       },
       "ldb = 4 is smaller than B's stored row length 5"},
      {"ldc < N", [](Matmul& m) { m.ldc = 4; }, "ldc = 4 is smaller than C's stored row length 5"},
      {"negative M", [](Matmul& m) { m.M = -1; }, "negative size"},
      {"negative K", [](Matmul& m) { m.K = -3; }, "negative size"},
      {"K beyond int32", [](Matmul& m) { m.K = int64_t{1} << 31; }, "beyond int32"},
      {"F32 with a bf16 A", [](Matmul& m) { m.A.dtype = StorageDtype::BF16; },
       "F32 precision needs fp32 operands, got A bf16 and B f32"},
      {"BF16 with fp32 operands", [](Matmul& m) { m.precision = Precision::BF16; },
       "BF16 precision needs bf16 operands, got A f32 and B f32"},
      {"BF16 with an fp16 B",
       [](Matmul& m) {
         m.precision = Precision::BF16;
         m.A.dtype = StorageDtype::BF16;
         m.B.dtype = StorageDtype::F16;
       },
       "BF16 precision needs bf16 operands, got A bf16 and B f16"},
      {"null A", [](Matmul& m) { m.A.data = nullptr; }, "A is a null pointer"},
      {"null B", [](Matmul& m) { m.B.data = nullptr; }, "B is a null pointer"},
      {"null C", [](Matmul& m) { m.C = nullptr; }, "C is a null pointer"},
      {"null C with K = 0",
       [](Matmul& m) {
         m.K = 0;
         m.C = nullptr;
       },
       "C is a null pointer"},
  };
  for (const Bad& b : bad) {
    Matmul m = good.m();
    b.breaks(m);
    try {
      cuda::to_col_major(m);
      ADD_FAILURE() << b.what << " was accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(b.message), std::string::npos) << b.what << ": " << msg;
      EXPECT_EQ(msg.rfind("matmul (M=", 0), 0u) << b.what << ": no shape in " << msg;
    }
  }
  // Operands an empty or K = 0 product never reads may be null.
  Matmul empty = good.m();
  empty.M = 0;
  empty.A.data = empty.B.data = nullptr;
  empty.C = nullptr;
  EXPECT_EQ(cuda::to_col_major(empty).work, GemmWork::None);
  Matmul k0 = good.m();
  k0.K = 0;
  k0.A.data = k0.B.data = nullptr;
  EXPECT_EQ(cuda::to_col_major(k0).work, GemmWork::ScaleC);
}

// ---- On the GPU, against the CPU backend ----

// The GPU's C for case c (A, B and C uploaded into guarded device arrays; the guards are checked
// on download), given host operands of type T.
template <class T>
std::vector<float> gpu_result(Backend& gpu, const Case& c, const Operands& o,
                              const std::vector<T>& A, const std::vector<T>& B) {
  MemoryTracker tracker;
  GuardedDeviceArray<T> dA(gpu, tracker, static_cast<int64_t>(A.size()));
  GuardedDeviceArray<T> dB(gpu, tracker, static_cast<int64_t>(B.size()));
  GuardedDeviceArray<float> dC(gpu, tracker, static_cast<int64_t>(o.C.size()));
  dA.upload(A);
  dB.upload(B);
  dC.upload(o.C);
  gpu.matmul(matmul_for(c, o, dA.data(), dB.data(), dC.data()));
  EXPECT_EQ(dA.download(), A) << name(c) << ": A changed";
  EXPECT_EQ(dB.download(), B) << name(c) << ": B changed";
  return dC.download();
}

// |alpha|·Σ_k |op(A)(i,k)|·|op(B)(k,j)| + |beta·C(i,j)| for each (i,j) of C's view: the scale of
// the rounding error of an fp32 product.
std::vector<double> error_scale(const Case& c, const Operands& o) {
  std::vector<double> A(o.A.size()), B(o.B.size()), S(o.C.size(), 0.0);
  std::transform(o.A.begin(), o.A.end(), A.begin(), [](float x) { return std::fabs(x); });
  std::transform(o.B.begin(), o.B.end(), B.begin(), [](float x) { return std::fabs(x); });
  gemm_ref<double>(c.ta, c.tb, c.M, c.N, c.K, std::fabs(c.alpha), A.data() + c.offset, o.lda,
                   B.data() + c.offset, o.ldb, 0.0, S.data() + c.offset, o.ldc);
  if (c.beta != 0.0f) {
    for (size_t at = 0; at < S.size(); ++at) S[at] += std::fabs(double(c.beta) * o.C[at]);
  }
  return S;
}

// Runs case c on the GPU and on the CPU backend and compares: fp32 operands element by element
// within 1e-5 of the error scale (fp32 products, no TF32); bf16 operands within 1e-2 of the
// reference's norm; every element finite (beta = 0 over NaN); padding and prefix untouched.
void expect_gpu_matches_cpu(Backend& gpu, Backend& cpu, const Case& c, uint64_t seed) {
  const Operands o = make_operands(c, seed);
  const std::vector<float> got = c.precision == Precision::F32
                                     ? gpu_result(gpu, c, o, o.A, o.B)
                                     : gpu_result(gpu, c, o, o.A16, o.B16);
  std::vector<float> want = o.C;
  if (c.K == 0 || c.M == 0 || c.N == 0) {
    // No product to compare with a library: the exact C = beta·C, or C untouched.
    want = row_major_expected(c, o);
  } else {
    cpu.matmul(host_matmul(c, o, want));
  }
  const std::vector<double> scale = error_scale(c, o);
  double diff2 = 0, ref2 = 0;
  for (size_t at = 0; at < want.size(); ++at) {
    const int64_t e = static_cast<int64_t>(at) - c.offset;
    const bool in_view = e >= 0 && e % o.ldc < c.N;
    if (!in_view) {
      ASSERT_EQ(bits(got[at]), bits(o.C[at]))
          << name(c) << ": padding element " << at << " changed";
      continue;
    }
    ASSERT_TRUE(std::isfinite(got[at])) << name(c) << ": element " << at << " = " << got[at];
    const double d = double(got[at]) - double(want[at]);
    diff2 += d * d;
    ref2 += double(want[at]) * double(want[at]);
    if (c.precision == Precision::F32) {
      ASSERT_LE(std::fabs(d), 1e-5 * scale[at])
          << name(c) << ": row " << e / o.ldc << " col " << e % o.ldc << ": gpu " << got[at]
          << ", cpu " << want[at];
    }
  }
  EXPECT_LE(std::sqrt(diff2), 1e-2 * std::sqrt(ref2)) << name(c);
}

TEST(CudaGemm, ProductsMatchTheCpuBackend) {
  LOMO_CUDA_OR_SKIP(gpu);
  const auto cpu = make_backend({.device = "cpu"});
  uint64_t seed = 1000;
  for (Precision p : {Precision::F32, Precision::BF16}) {
    for (const Case& c : product_cases(p)) expect_gpu_matches_cpu(*gpu, *cpu, c, seed++);
  }
}

TEST(CudaGemm, KZeroAndEmptyProductsMatchTheReference) {
  LOMO_CUDA_OR_SKIP(gpu);
  const auto cpu = make_backend({.device = "cpu"});
  uint64_t seed = 2000;
  for (const Case& c : degenerate_cases()) expect_gpu_matches_cpu(*gpu, *cpu, c, seed++);
}

TEST(CudaGemm, ModelProductsMatchTheCpuBackend) {
  LOMO_CUDA_OR_SKIP(gpu);
  const auto cpu = make_backend({.device = "cpu"});
  uint64_t seed = 3000;
  // Small, and a size with full tensor-core tiles (B·T = 256, in = 192, out = 320).
  for (const Case& c : model_cases(12, 16, 20)) expect_gpu_matches_cpu(*gpu, *cpu, c, seed++);
  for (const Case& c : model_cases(256, 192, 320)) expect_gpu_matches_cpu(*gpu, *cpu, c, seed++);
}

TEST(CudaGemm, PlansAreCachedPerShapeKeyAndReusedAcrossScales) {
  LOMO_CUDA_OR_SKIP(gpu);
  auto* backend = dynamic_cast<cuda::CudaBackend*>(gpu.get());
  ASSERT_NE(backend, nullptr);
  cuda::LtGemm lt(backend->stream());
  EXPECT_EQ(lt.workspace_bytes(), size_t{32} << 20);
  const auto cpu = make_backend({.device = "cpu"});
  MemoryTracker tracker;
  Case c{Trans::No, Trans::Yes, 33, 17, 65, 3, 0, 0.7f, 0.5f, Precision::F32, false};
  const Operands o = make_operands(c, 4000);
  GuardedDeviceArray<float> dA(*gpu, tracker, static_cast<int64_t>(o.A.size()));
  GuardedDeviceArray<float> dB(*gpu, tracker, static_cast<int64_t>(o.B.size()));
  GuardedDeviceArray<float> dC(*gpu, tracker, static_cast<int64_t>(o.C.size()));
  dA.upload(o.A);
  dB.upload(o.B);
  const auto run = [&](const Case& k, size_t plans) {
    dC.upload(o.C);
    lt.run(matmul_for(k, o, dA.data(), dB.data(), dC.data()));
    backend->synchronize("the cached-plan test's product");
    EXPECT_EQ(lt.cached_plans(), plans) << name(k);
    std::vector<float> want = o.C;
    cpu.get()->matmul(host_matmul(k, o, want));
    const std::vector<float> got = dC.download();
    const std::vector<double> scale = error_scale(k, o);
    for (int64_t i = 0; i < k.M; ++i) {
      for (int64_t j = 0; j < k.N; ++j) {
        const size_t at = static_cast<size_t>(k.offset + i * o.ldc + j);
        ASSERT_LE(std::fabs(double(got[at]) - want[at]), 1e-5 * scale[at]) << name(k);
      }
    }
  };
  run(c, 1);
  c.alpha = -2.0f;  // alpha and a nonzero beta are arguments, not part of the key
  c.beta = 1.0f;
  run(c, 1);
  c.beta = 0.0f;  // beta = 0 lets the algorithm skip reading C: a key of its own
  run(c, 2);
  c.offset = 1;  // 4-byte-aligned views: another alignment class
  run(c, 3);
}

TEST(CudaGemm, BadMatmulsAreErrorsOnTheGpuToo) {
  LOMO_CUDA_OR_SKIP(gpu);
  GoodMatmul good;  // host pointers: the mapping rejects the shape before cuBLASLt sees them
  Matmul m = good.m();
  m.ldc = 4;
  try {
    gpu->matmul(m);
    ADD_FAILURE() << "ldc < N was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ldc = 4"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lomo::test
