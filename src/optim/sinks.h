// Gradient storage and the sinks that consume gradients during backward.
//
//  * ReusableGradients — LOMO's memory: one buffer the size of the largest parameter, handed to
//    each parameter in turn, plus (tied embeddings only) one held buffer for the embedding, whose
//    gradient is the sum of the LM head's (first in backward) and the lookup's (last).
//    Peak gradient bytes = 4·max_numel            (untied)
//                        = 4·(V·d + max over the other tensors)   (tied)
//    With no buffer for the fused tensors (every matrix, ZeroBufferRule::no_buffer): 4·the
//    largest norm or bias vector, tied or not.
//  * StoredGradients — the classic baselines: one buffer per parameter, all alive at once.
//
//  * LomoSink  — fused update p ← p·(1 − lr·wd) − lr·c·clamp(g), in fp32, the moment g is done;
//    the non-finite check of g is queued in a GradientChecks the trainer reads after the pass.
//  * NormSink  — pass 1 of global-norm clipping: Σ clamp(g)² and the first non-finite tensor,
//    through a GradientChecks read once when the pass is done.
//  * StoreSink — keeps every gradient for a step after backward (SGD, AdamW).
// Buffers come from the backend's allocator, and every update runs on the backend.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/memory.h"
#include "core/rounding.h"
#include "model/grad_sink.h"
#include "model/params.h"
#include "ops/backend.h"
#include "optim/gradient_checks.h"

namespace lomo {

class ReusableGradients {
 public:
  // held_id: id of the parameter whose gradient must survive the whole backward (the tied
  // embedding), or −1. no_buffer_for_fused (ZeroBufferRule::no_buffer): the tensors that take the
  // zero-buffer update (takes_fused_update: every matrix, the tied embedding included) never ask
  // for a buffer, so the shared buffer is sized for the others only and nothing is held.
  ReusableGradients(const ModelParams& params, int held_id, MemoryTracker& tracker,
                    Backend& backend, bool no_buffer_for_fused = false)
      : ReusableGradients(params.all(), held_id, tracker, backend, no_buffer_for_fused) {}
  // For tensors outside a ModelParams: a rank's shards (dist/param_shards.h).
  ReusableGradients(const std::vector<Param>& params, int held_id, MemoryTracker& tracker,
                    Backend& backend, bool no_buffer_for_fused = false);
  float* buffer_for(const Param& p);
  Backend& backend() const { return backend_; }

 private:
  Backend& backend_;
  int held_id_;
  Buffer held_;
  Buffer shared_;
};

// One buffer per tensor of `params` (the model's, or LoRA's adapters), indexed by Param::id.
class StoredGradients {
 public:
  StoredGradients(const std::vector<Param>& params, MemoryTracker& tracker, Backend& backend);
  float* buffer_for(const Param& p) { return bufs_[p.id].f32(); }
  Backend& backend() const { return backend_; }

 private:
  Backend& backend_;
  std::vector<Buffer> bufs_;
};

// The error that stops a run whose gradient of `tensor` holds inf or NaN (design §2 rule 8).
NonFiniteError nonfinite_gradient(int64_t step, const std::string& tensor);
// Throws nonfinite_gradient(step, tensor) if g holds inf or NaN.
void check_finite(Backend& backend, const float* g, int64_t n, const std::string& tensor,
                  int64_t step);

struct LomoUpdate {
  float lr = 0;
  float weight_decay = 0;
  float clip_value = 0;    // ≤ 0: off
  float grad_coef = 1.0f;  // global-norm clipping coefficient from the norm pass
  bool decay_norms_and_biases = true;
  bool fused_linear = false;  // ZeroBufferRule::fused_update: the zero-buffer update of the
                              // block linear weights
  bool fused_all = false;     // ZeroBufferRule::no_buffer: also the LM head and the embedding
  RoundingMode rounding;      // write-back of 16-bit parameters (design §2 rule 5)
  int64_t step = 0;           // for messages
};

class LomoSink : public GradSink {
 public:
  // Starts a pass of `checks`, which the trainer reads when the pass is done.
  LomoSink(ReusableGradients& grads, GradientChecks& checks, const LomoUpdate& update)
      : grads_(grads), checks_(checks), u_(update) {
    checks_.begin();
  }
  float* gradient_buffer(const Param& p) override { return grads_.buffer_for(p); }
  void consume(Param& p, float* grad) override;
  // keep = 1 − lr·wd, step = lr·c for the tensors the zero-buffer rule covers
  // (takes_fused_linear_update with fused_linear; takes_fused_update with fused_all).
  std::optional<SgdStep> fused_update(const Param& p) override;

 private:
  ReusableGradients& grads_;
  GradientChecks& checks_;
  LomoUpdate u_;
};

class NormSink : public GradSink {
 public:
  // overflow_at: a gradient element above this magnitude counts as an overflow, as it would in
  // fp16 gradient storage (65504); infinity for fp32/bf16, where only inf/NaN do.
  // The sums go to `checks` (a new pass of it).
  NormSink(ReusableGradients& grads, GradientChecks& checks, float clip_value,
           float overflow_at = INFINITY)
      : grads_(grads), checks_(checks), clip_value_(clip_value), overflow_at_(overflow_at) {
    checks_.begin();
  }
  float* gradient_buffer(const Param& p) override { return grads_.buffer_for(p); }
  void consume(Param& p, float* grad) override;
  // After the pass (the first call reads the checks, once):
  double norm();
  const std::string& first_nonfinite();  // "" when all finite

 private:
  const GradientChecks::Result& result();
  ReusableGradients& grads_;
  GradientChecks& checks_;
  float clip_value_;
  float overflow_at_;
  std::optional<GradientChecks::Result> result_;
};

class StoreSink : public GradSink {
 public:
  explicit StoreSink(StoredGradients& grads) : grads_(grads) {}
  float* gradient_buffer(const Param& p) override { return grads_.buffer_for(p); }
  void consume(Param&, float*) override {}

 private:
  StoredGradients& grads_;
};

// Global L2 norm over stored gradients (fp64 accumulation).
double global_norm(const std::vector<Param>& params, StoredGradients& grads);

// Plain SGD on stored gradients: same arithmetic as LomoSink, after backward.
void sgd_step(std::vector<Param>& params, StoredGradients& grads, const LomoUpdate& u);

struct AdamWConfig {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
};

// AdamW as torch.optim.AdamW: decoupled decay p ← p(1 − lr·wd), then the bias-corrected Adam step.
// m and v are fp32, counted as optimizer states (2 × parameter bytes).
class AdamW {
 public:
  // For the tensors of `params` (the model's, or LoRA's adapters), indexed by Param::id.
  AdamW(const std::vector<Param>& params, const AdamWConfig& cfg, MemoryTracker& tracker,
        Backend& backend);
  void step(std::vector<Param>& params, StoredGradients& grads, const LomoUpdate& u);

  // The state a checkpoint holds: steps taken, and m, v of parameter `id` (numel floats each).
  int64_t steps() const { return t_; }
  void set_steps(int64_t t) { t_ = t; }
  Buffer& m(int id) { return m_[id]; }
  Buffer& v(int id) { return v_[id]; }

 private:
  AdamWConfig cfg_;
  int64_t t_ = 0;
  std::vector<Buffer> m_, v_;
};

}  // namespace lomo
