// A test backend that proves every op writes what it claims to: before each CPU op runs, every
// output the op OVERWRITES (ops/backend.h) and every scratch buffer it is given is filled with
// NaN. An op that leaves part of an output unwritten, or reads scratch it did not write, or a
// model that reads a buffer before any op wrote it, then shows NaN in the loss, the logits, the
// gradients or the parameters. Outputs an op ADDS into or updates in place, and outputs that
// alias an input, are left alone.
#pragma once

#include "ops/cpu/cpu_backend.h"

namespace lomo::test {

class NanFillBackend : public CpuBackend {
 public:
  std::string name() const override { return "nan-fill(" + CpuBackend::name() + ")"; }

  void matmul(const Matmul& m) override;
  void embedding_forward(float* out, const int32_t* ids, ParamView table, int64_t N) override;
  void embedding_update(ParamView table, const float* dout, const int32_t* ids, int64_t N,
                        int32_t* order, const SgdStep& s, const HeldRows& held) override;
  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t N, int64_t d,
                       double eps) override;
  void rmsnorm_apply(float* y, const float* x, const float* rstd, const float* w, int64_t N,
                     int64_t d) override;
  void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* rstd,
                        const float* w, int64_t N, int64_t d) override;
  void attention_forward(float* out, float* stats, float* work, const float* q, const float* k,
                         const float* v, const int32_t* lengths, const AttnDims& dims) override;
  void attention_backward(float* dq, float* dk, float* dv, float* work, const float* dout,
                          const float* stats, const float* q, const float* k, const float* v,
                          const int32_t* lengths, const AttnDims& dims) override;
  void attention_cached(float* out, float* work, const float* q, const float* k_cache,
                        const float* v_cache, const KvAttnDims& dims) override;
  void swiglu_forward(float* m, const float* g, const float* u, int64_t n) override;
  void swiglu_backward(float* dg, float* du, const float* dm, const float* g, const float* u,
                       int64_t n) override;
  void dropout(float* y, const float* x, int64_t n, float p, uint64_t key) override;
  void bias_rows(float* Y, const float* b, int64_t N, int64_t out) override;
  void bias_grad(float* db, const float* dY, int64_t N, int64_t out) override;
  double lm_head_loss(ParamView W, const LmHeadIo& io) override;
  void to_f32(float* dst, ParamView src, int64_t begin, int64_t n) override;
  void to_bf16(uint16_t* dst, const float* src, int64_t n) override;
  void to_bf16_in_place(float* x, int64_t n) override;
  void store(ParamView p, const float* w32, const RoundingMode& r) override;
  void fill_normal(float* x, int64_t n, uint64_t seed, uint64_t stream, double stddev,
                   int64_t first) override;

  // How many ops ran with a NaN-filled output (a test asserts the checker was exercised).
  int64_t poisoned() const { return poisoned_; }

 private:
  void poison(float* x, int64_t n);
  void poison(double* x, int64_t n);
  void poison(uint16_t* x, int64_t n);
  int64_t poisoned_ = 0;
};

}  // namespace lomo::test
