// A test backend whose memory the host cannot touch: the seam check for device backends, run
// without a GPU. It is the CPU backend, but every byte its allocator() hands out (activations,
// workspace, gradients, optimizer states, and the parameters once moved there) is mapped
// PROT_NONE except while one of its ops runs. Model, sink or trainer code that reads or writes
// such memory itself, instead of through an op or a copy, dies with SIGSEGV at that line, just
// as it would read garbage or fault on a GPU's device pointer. The tracker counts this memory
// as a GPU's (Device cuda:7), so code that asks where memory lives takes its device path too.
#pragma once

#include <cstddef>
#include <vector>

#include "ops/cpu/cpu_backend.h"

namespace lomo::test {

class FarAllocator final : public Allocator {
 public:
  Device device() const override { return {Device::Kind::Cuda, 7}; }
  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;
  // Every region readable and writable (open) or not (closed).
  void set_open(bool open);

 private:
  struct Region {
    void* p;
    size_t bytes;
  };
  std::vector<Region> regions_;
  bool open_ = false;
};

class FarBackend final : public CpuBackend {
 public:
  FarBackend() : CpuBackend(1) {}
  std::string name() const override { return "far(" + CpuBackend::name() + ")"; }
  Allocator& allocator() override { return far_; }
  // Ops that ran (a test asserts the backend was exercised).
  int64_t ops() const { return ops_; }

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
  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t N, int64_t d,
                       double eps) override;
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
  void adalomo_update(ParamView p, float* g, float* row, float* col, const AdaLomoStep& s) override;
  void adamw_update(ParamView p, const float* g, float* m, float* v, const AdamWStep& s) override;

 private:
  // Opens the memory for the op's duration; nested ops (the LM head calls matmul) keep it open
  // until the outermost returns.
  class Reach {
   public:
    explicit Reach(FarBackend& b);
    ~Reach();
    Reach(const Reach&) = delete;
    Reach& operator=(const Reach&) = delete;

   private:
    FarBackend& b_;
  };
  FarAllocator far_;
  int depth_ = 0;
  int64_t ops_ = 0;
};

}  // namespace lomo::test
