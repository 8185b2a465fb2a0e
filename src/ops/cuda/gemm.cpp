#include "ops/cuda/gemm.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "ops/cuda/cublaslt_api.h"
#include "ops/cuda/cuda_util.h"

namespace lomo::cuda {

namespace {

cublasOperation_t blas_op(Trans t) {
  return t == Trans::No ? CUBLAS_OP_N : CUBLAS_OP_T;
}

cudaDataType_t operand_type(const ColMajorGemm& g) {
  return g.precision == Precision::F32 ? CUDA_R_32F : CUDA_R_16BF;
}

// The largest power of two, at most 256 (cuBLASLt's default requirement), dividing the address.
uint32_t alignment_class(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  const uintptr_t lowest = a & (~a + 1);
  return static_cast<uint32_t>(lowest == 0 ? 256 : std::min<uintptr_t>(lowest, 256));
}

// Throws naming `what` and the shape when a CUDA runtime call failed.
void check_cuda(cudaError_t e, const char* what, const ColMajorGemm& g) {
  if (e == cudaSuccess) return;
  check(e, (std::string(what) + " for " + describe(g)).c_str());
}

template <class T>
void set_desc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const T& value,
              const ColMajorGemm& g) {
  check_lt(cublaslt().cublasLtMatmulDescSetAttribute(d, attr, &value, sizeof(value)),
           "setting a matmul descriptor attribute", g);
}

template <class T>
void set_pref(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr,
              const T& value, const ColMajorGemm& g) {
  check_lt(cublaslt().cublasLtMatmulPreferenceSetAttribute(p, attr, &value, sizeof(value)),
           "setting a heuristic preference", g);
}

// A preference or transform descriptor, or a layout that lives only during one call.
struct PrefGuard {
  cublasLtMatmulPreference_t p = nullptr;
  ~PrefGuard() {
    if (p != nullptr) cublaslt().cublasLtMatmulPreferenceDestroy(p);
  }
};
struct TransformGuard {
  cublasLtMatrixTransformDesc_t d = nullptr;
  ~TransformGuard() {
    if (d != nullptr) cublaslt().cublasLtMatrixTransformDescDestroy(d);
  }
};
struct LayoutGuard {
  cublasLtMatrixLayout_t l = nullptr;
  ~LayoutGuard() {
    if (l != nullptr) cublaslt().cublasLtMatrixLayoutDestroy(l);
  }
};

}  // namespace

void check_lt(cublasStatus_t s, const char* what, const ColMajorGemm& shape) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw Error(std::string("cuBLASLt: ") + what + " for " + describe(shape) + ": " +
              cublaslt().cublasLtGetStatusName(s) + " (" + cublaslt().cublasLtGetStatusString(s) +
              ")");
}

void LtGemm::DescDeleter::operator()(cublasLtMatmulDescOpaque_t* d) const noexcept {
  cublaslt().cublasLtMatmulDescDestroy(d);
}
void LtGemm::LayoutDeleter::operator()(cublasLtMatrixLayoutOpaque_t* l) const noexcept {
  cublaslt().cublasLtMatrixLayoutDestroy(l);
}

LtGemm::LtGemm(cudaStream_t stream) : stream_(stream) {
  const cublasStatus_t s = cublaslt().cublasLtCreate(&handle_);
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw Error(std::string("cuBLASLt: creating the handle: ") +
                cublaslt().cublasLtGetStatusName(s) + " (" + cublaslt().cublasLtGetStatusString(s) +
                ")");
  }
  const cudaError_t e = cudaMalloc(&workspace_, kWorkspaceBytes);
  if (e != cudaSuccess) {
    cublaslt().cublasLtDestroy(handle_);
    check(e, "allocating the cuBLASLt workspace (32 MiB)");
  }
}

LtGemm::~LtGemm() {
  plans_.clear();  // descriptors before the handle
  // Products queued on the stream may still use the workspace.
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (handle_ != nullptr) cublaslt().cublasLtDestroy(handle_);
}

void LtGemm::run(const Matmul& m) {
  const ColMajorGemm g = to_col_major(m);
  switch (g.work) {
    case GemmWork::None:
      return;
    case GemmWork::ScaleC:
      scale_c(g);
      return;
    case GemmWork::Product:
      product(g);
      return;
  }
}

const LtGemm::Plan& LtGemm::plan_for(const ColMajorGemm& g) {
  const Key key{static_cast<int>(g.transa),
                static_cast<int>(g.transb),
                g.m,
                g.n,
                g.k,
                g.A.ld,
                g.B.ld,
                g.ldc,
                static_cast<int>(g.precision),
                g.beta == 0.0f,
                alignment_class(g.A.data),
                alignment_class(g.B.data),
                alignment_class(g.C)};
  if (auto it = plans_.find(key); it != plans_.end()) return it->second;

  Plan plan;
  cublasLtMatmulDesc_t desc = nullptr;
  check_lt(cublaslt().cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F),
           "creating the matmul descriptor", g);
  plan.desc.reset(desc);
  set_desc(desc, CUBLASLT_MATMUL_DESC_TRANSA, static_cast<int32_t>(blas_op(g.transa)), g);
  set_desc(desc, CUBLASLT_MATMUL_DESC_TRANSB, static_cast<int32_t>(blas_op(g.transb)), g);

  // Layouts describe the stored matrices: A (m,k) or (k,m), B (k,n) or (n,k), C (m,n).
  const auto layout = [&](cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld,
                          const char* what) {
    cublasLtMatrixLayout_t l = nullptr;
    check_lt(cublaslt().cublasLtMatrixLayoutCreate(&l, type, static_cast<uint64_t>(rows),
                                                   static_cast<uint64_t>(cols), ld),
             what, g);
    return LayoutPtr(l);
  };
  const bool a_no = g.transa == Trans::No, b_no = g.transb == Trans::No;
  plan.a = layout(operand_type(g), a_no ? g.m : g.k, a_no ? g.k : g.m, g.A.ld, "A's layout");
  plan.b = layout(operand_type(g), b_no ? g.k : g.n, b_no ? g.n : g.k, g.B.ld, "B's layout");
  plan.c = layout(CUDA_R_32F, g.m, g.n, g.ldc, "C's layout");

  PrefGuard pref;
  check_lt(cublaslt().cublasLtMatmulPreferenceCreate(&pref.p), "creating the heuristic preference",
           g);
  set_pref(pref.p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t{kWorkspaceBytes}, g);
  set_pref(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_a, g);
  set_pref(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_b, g);
  set_pref(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c, g);
  set_pref(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_c, g);

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  check_lt(cublaslt().cublasLtMatmulAlgoGetHeuristic(handle_, desc, plan.a.get(), plan.b.get(),
                                                     plan.c.get(), plan.c.get(), pref.p, 1, &result,
                                                     &found),
           "choosing an algorithm", g);
  if (found == 0) {
    throw Error("cuBLASLt: no algorithm for " + describe(g) + " with operand alignments " +
                std::to_string(key.align_a) + "/" + std::to_string(key.align_b) + "/" +
                std::to_string(key.align_c) + " bytes and a " +
                std::to_string(kWorkspaceBytes >> 20) + " MiB workspace");
  }
  plan.algo = result.algo;
  return plans_.emplace(key, std::move(plan)).first->second;
}

void LtGemm::product(const ColMajorGemm& g) {
  const Plan& p = plan_for(g);
  // C = D: the update happens in place.
  check_lt(cublaslt().cublasLtMatmul(handle_, p.desc.get(), &g.alpha, g.A.data, p.a.get(), g.B.data,
                                     p.b.get(), &g.beta, g.C, p.c.get(), g.C, p.c.get(), &p.algo,
                                     workspace_, kWorkspaceBytes, stream_),
           "running the matmul", g);
}

void LtGemm::scale_c(const ColMajorGemm& g) {
  const size_t col_bytes = sizeof(float) * static_cast<size_t>(g.m);  // one stored column of C
  const size_t pitch = sizeof(float) * static_cast<size_t>(g.ldc);
  if (g.beta == 1.0f) return;
  if (g.beta == 0.0f) {
    // All-zero bits are +0.0f; C is not read, as beta = 0 promises.
    check_cuda(cudaMemset2DAsync(g.C, pitch, 0, col_bytes, static_cast<size_t>(g.n), stream_),
               "zeroing C", g);
    return;
  }
  // C = beta·C through the workspace, a block of columns at a time: cuBLASLt's transform
  // (C' = alpha·op(A) + beta·op(B)) is not documented to work in place.
  const int64_t cols_per_block = static_cast<int64_t>(kWorkspaceBytes / col_bytes);
  if (cols_per_block == 0) {
    throw Error(describe(g) + ": K = 0 with beta = " + std::to_string(g.beta) +
                " needs a column of C to fit the " + std::to_string(kWorkspaceBytes >> 20) +
                " MiB workspace");
  }
  TransformGuard t;
  check_lt(cublaslt().cublasLtMatrixTransformDescCreate(&t.d, CUDA_R_32F),
           "creating the transform descriptor", g);
  const float zero = 0.0f;
  for (int64_t j0 = 0; j0 < g.n; j0 += cols_per_block) {
    const int64_t cols = std::min(cols_per_block, g.n - j0);
    LayoutGuard src, dst;
    check_lt(cublaslt().cublasLtMatrixLayoutCreate(&src.l, CUDA_R_32F, static_cast<uint64_t>(g.m),
                                                   static_cast<uint64_t>(cols), g.ldc),
             "C's layout for scaling", g);
    check_lt(cublaslt().cublasLtMatrixLayoutCreate(&dst.l, CUDA_R_32F, static_cast<uint64_t>(g.m),
                                                   static_cast<uint64_t>(cols), g.m),
             "the workspace's layout for scaling", g);
    float* block = g.C + j0 * g.ldc;  // (m, cols) column-major, ld = ldc
    // No B (as in NVIDIA's samples): 0·B would turn an infinite C into NaN.
    check_lt(cublaslt().cublasLtMatrixTransform(handle_, t.d, &g.beta, block, src.l, &zero, nullptr,
                                                nullptr, workspace_, dst.l, stream_),
             "scaling C by beta", g);
    check_cuda(cudaMemcpy2DAsync(block, pitch, workspace_, col_bytes, col_bytes,
                                 static_cast<size_t>(cols), cudaMemcpyDeviceToDevice, stream_),
               "copying scaled C back", g);
  }
}

}  // namespace lomo::cuda
