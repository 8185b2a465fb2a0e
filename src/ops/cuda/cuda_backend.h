// CudaBackend: the op table (ops/backend.h) on one NVIDIA GPU. Every op runs on the backend's
// one stream, in call order; ops that return a value synchronise that stream. Products go
// through cuBLASLt (ops/cuda/gemm.h), the rest through the kernels of this folder, whose
// per-element maths is shared with the CPU backend (core/half.h, core/rounding.h,
// ops/element/). Member functions are defined beside their kernels, one concept per file:
//   cuda_backend.cpp  device, stream, memory, copies, fill, the profile clock
//   gemm.cpp          matmul (cuBLASLt)
//   embedding.cu, rmsnorm.cu, rope.cu, elementwise.cu   layers
//   attention.cu      causal attention (fp32; cuDNN's fused kernel is the next step)
//   convert.cu, update.cu   conversions, rounding, gradient checks, the optimizer updates
//   lm_head.cu        the fused LM head and cross-entropy
#pragma once

#include <cuda_runtime.h>

#include <memory>
#include <string>

#include "ops/backend.h"
#include "ops/cuda/device_memory.h"
#include "ops/cuda/device_plan.h"

namespace lomo::cuda {

class LtGemm;
class CudnnAttention;

class CudaBackend final : public Backend {
 public:
  // GPU `device_index`; throws lomo::Error (one line, naming the cause) when there is no usable
  // GPU, driver or device of that index.
  // bf16_products: attention may run through cuDNN's fused bf16 kernels (the run multiplies in
  // bf16); otherwise it stays on the fp32 kernels.
  explicit CudaBackend(int device_index = 0, bool bf16_products = false);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return name_; }
  int threads() const override { return 1; }
  Allocator& allocator() override { return allocator_; }
  size_t memory_available() const override;
  size_t untracked_bytes() const override { return untracked_device_bytes(); }
  cudaStream_t stream() const { return stream_; }
  void* native_queue() const override { return stream_; }
  // Blocks until every op queued so far has run; a fault in one of them is a lomo::Error naming
  // `what`.
  void synchronize(const char* what);
  void synchronize() override { synchronize("an op queued earlier"); }
  // CUDA events on the stream (ops/cuda/event_clock.h).
  std::unique_ptr<PhaseClock> make_phase_clock() override;

  void copy_to_device(void* dst, const void* host_src, size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void fill(float* x, float value, int64_t n) override;

  void matmul(const Matmul& m) override;

  void embedding_forward(float* out, const int32_t* ids, ParamView table, int64_t N) override;
  void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N,
                          int64_t d) override;
  void embedding_update(ParamView table, const float* dout, const int32_t* ids, int64_t N,
                        int32_t* order, const SgdStep& s, const HeldRows& held) override;
  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t N,
                       int64_t d, double eps) override;
  void rmsnorm_apply(float* y, const float* x, const float* rstd, const float* w, int64_t N,
                     int64_t d) override;
  void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* rstd,
                        const float* w, int64_t N, int64_t d) override;
  void rope_forward(float* x, const RopeTable& table, int64_t B, int64_t T, int64_t n_heads,
                    int64_t head_dim) override;
  void rope_backward(float* dx, const RopeTable& table, int64_t B, int64_t T, int64_t n_heads,
                     int64_t head_dim) override;
  int64_t attention_workspace_elems(const AttnDims& dims) const override;
  void attention_forward(float* out, float* stats, float* work, const float* q, const float* k,
                         const float* v, const int32_t* lengths, const AttnDims& dims) override;
  void attention_backward(float* dq, float* dk, float* dv, float* work, const float* dout,
                          const float* stats, const float* q, const float* k, const float* v,
                          const int32_t* lengths, const AttnDims& dims) override;
  void rope_forward_at(float* x, const RopeTable& table, int64_t pos0, int64_t B, int64_t T,
                       int64_t n_heads, int64_t head_dim) override;
  int64_t attention_cached_workspace_elems(const KvAttnDims& dims) const override;
  void attention_cached(float* out, float* work, const float* q, const float* k_cache,
                        const float* v_cache, const KvAttnDims& dims) override;
  void swiglu_forward(float* m, const float* g, const float* u, int64_t n) override;
  void swiglu_backward(float* dg, float* du, const float* dm, const float* g, const float* u,
                       int64_t n) override;
  void add(float* y, const float* x, int64_t n) override;
  void dropout(float* y, const float* x, int64_t n, float p, uint64_t key) override;
  void dropout_add(float* y, const float* x, int64_t n, float p, float alpha,
                   uint64_t key) override;
  void bias_rows(float* Y, const float* b, int64_t N, int64_t out) override;
  void bias_grad(float* db, const float* dY, int64_t N, int64_t out) override;
  double lm_head_loss(ParamView W, const LmHeadIo& io) override;

  void to_f32(float* dst, ParamView src, int64_t begin, int64_t n) override;
  void to_bf16(uint16_t* dst, const float* src, int64_t n) override;
  void to_bf16_in_place(float* x, int64_t n) override;
  void store(ParamView p, const float* w32, const RoundingMode& r) override;
  void fill_normal(float* x, int64_t n, uint64_t seed, uint64_t stream, double stddev,
                   int64_t first) override;

  void clip_by_value(float* g, int64_t n, float v) override;
  bool all_finite(const float* g, int64_t n) override;
  bool any_beyond(const float* g, int64_t n, float limit) override;
  double sum_squares(const float* g, int64_t n) override;
  void check_gradient(float* g, int64_t n, float clip, float limit, GradientCheck* out) override;
  void sgd_update(ParamView p, const float* g, const SgdStep& s) override;
  void adalomo_update(ParamView p, float* g, float* row, float* col,
                      const AdaLomoStep& s) override;
  void adamw_update(ParamView p, const float* g, float* m, float* v,
                    const AdamWStep& s) override;

 private:
  int index_;
  std::string name_;
  DeviceAllocator allocator_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<LtGemm> gemm_;
  // Attention through cuDNN (attention_cudnn.h): null in a build without cudnn-frontend; with
  // it, off unless the run multiplies in bf16. Mutable: attention_workspace_elems builds graphs.
  mutable std::unique_ptr<CudnnAttention> cudnn_attn_;
  // Small fixed scratch for reductions (update.cu): kReduceBytes of device memory for partial
  // results and as much pinned host memory to read the final value back.
  static constexpr size_t kReduceBytes = kReduceScratchBytes;  // device_plan.h
  void* reduce_dev_ = nullptr;
  void* reduce_host_ = nullptr;
};

}  // namespace lomo::cuda
