// The one GEMM wrapper of the CUDA backend: every product (forward Y = X·Wᵀ, dX, dW and the
// fused LOMO update W ← beta·W + alpha·dYᵀX) goes through LtGemm::run, which maps the row-major
// Matmul onto a column-major cuBLASLt call (the convention: ops/cuda/gemm_mapping.h).
//
// Numerics: fp32 compute (CUBLAS_COMPUTE_32F, never TF32, so the CPU backend's tolerances hold)
// with fp32 alpha/beta. Precision::F32 multiplies fp32 A and B; Precision::BF16 multiplies bf16 A
// and B; C is fp32 either way and is updated in place (C = D), beta may be nonzero; beta = 0
// writes C without reading it.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <type_traits>

#include "ops/cuda/device_plan.h"
#include "ops/cuda/gemm_mapping.h"
#include "ops/tensor.h"

namespace lomo::cuda {

// Throws lomo::Error "<what> for <shape>: <cuBLASLt's status name> (<its description>)" unless s
// is CUBLAS_STATUS_SUCCESS; `shape` comes from describe() and is only built on failure.
void check_lt(cublasStatus_t s, const char* what, const ColMajorGemm& shape);

class LtGemm {
 public:
  // Device memory the wrapper holds besides its descriptors: the cuBLASLt workspace.
  static constexpr size_t kWorkspaceBytes = kCublasLtWorkspaceBytes;  // device_plan.h

  // A cuBLASLt handle and the workspace on the current device; every call runs on `stream`.
  explicit LtGemm(cudaStream_t stream);
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // Queues C = alpha·op(A)·op(B) + beta·C on the stream (asynchronous; the pointers are device
  // memory). Throws lomo::Error naming the shape for a bad Matmul (gemm_mapping.h) or a cuBLASLt
  // failure, e.g. no algorithm for the shape.
  void run(const Matmul& m);

  // For the memory planner: device bytes held for as long as the backend lives.
  size_t workspace_bytes() const { return kWorkspaceBytes; }
  // Number of distinct shape keys planned so far (each holds descriptors and a chosen algorithm).
  size_t cached_plans() const { return plans_.size(); }

 private:
  // What the heuristic's choice depends on: transposes, sizes, leading dimensions, precision,
  // whether C is read (beta != 0), and the alignment class (largest power of two up to 256
  // dividing the address) of A, B and C.
  struct Key {
    int transa = 0, transb = 0;
    int64_t m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldc = 0;
    int precision = 0;
    bool beta_zero = false;
    uint32_t align_a = 0, align_b = 0, align_c = 0;
    auto operator<=>(const Key&) const = default;
  };
  struct DescDeleter {
    void operator()(cublasLtMatmulDescOpaque_t* d) const noexcept;
  };
  struct LayoutDeleter {
    void operator()(cublasLtMatrixLayoutOpaque_t* l) const noexcept;
  };
  using DescPtr = std::unique_ptr<cublasLtMatmulDescOpaque_t, DescDeleter>;
  using LayoutPtr = std::unique_ptr<cublasLtMatrixLayoutOpaque_t, LayoutDeleter>;
  // The descriptors of one shape key and the algorithm the heuristic chose for it. C's layout
  // is D's as well (in place).
  struct Plan {
    DescPtr desc;
    LayoutPtr a, b, c;
    cublasLtMatmulAlgo_t algo{};
  };

  const Plan& plan_for(const ColMajorGemm& g);
  void product(const ColMajorGemm& g);
  // K = 0: C = beta·C (zeros for beta = 0, without reading C).
  void scale_c(const ColMajorGemm& g);

  cudaStream_t stream_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;  // (kWorkspaceBytes) bytes of device memory
  std::map<Key, Plan> plans_;
};

}  // namespace lomo::cuda
