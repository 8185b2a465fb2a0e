// The CPU backend: the reference implementation of the op table (ops/backend.h), on host memory,
// with oneDNN for products and OpenMP across cores. Every kernel lives in this folder; this class
// only routes the table to them.
#pragma once

#include "ops/backend.h"

namespace lomo {

class CpuBackend : public Backend {
 public:
  // threads > 0 sets OpenMP's thread count (OpenMP's setting is process-wide: a second
  // CpuBackend with another count changes the first's); 0 keeps the default (all cores, or
  // OMP_NUM_THREADS).
  explicit CpuBackend(int threads = 0);

  std::string name() const override;
  int threads() const override;
  size_t memory_available() const override { return available_memory_bytes(); }
  Allocator& allocator() override { return host_allocator(); }

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
  void adalomo_update(ParamView p, float* g, float* row, float* col,
                      const AdaLomoStep& s) override;
  void adamw_update(ParamView p, const float* g, float* m, float* v, const AdamWStep& s) override;
};

}  // namespace lomo
