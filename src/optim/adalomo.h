// AdaLomo (Lv et al. 2023, "AdaLomo: Low-memory Optimization with Adaptive Learning Rate"),
// applied inside backward like LOMO, through the gradient sink. Per parameter, at step t ≥ 1:
//   g ← c · clamp(g)                         (clip by value, then the global-norm coefficient)
//   β = 1 − t^−0.8;  G = g² + 1e-30
//   2-D (rows, cols): r ← β·r + (1 − β)·mean_cols(G),  s ← β·s + (1 − β)·mean_rows(G)
//                     u = g / √(r_i · s_j / mean(r))        (Adafactor's factored estimate)
//   1-D:              v ← β·v + (1 − β)·G,  u = g / √v
//   u ← u / max(1, RMS(u));  lr_t = lr · max(1e-3, RMS(θ))
//   θ ← θ·(1 − lr_t·wd) − lr_t · u
// The states r, s (or v) are fp32 and counted as optimizer states: rows + cols floats per
// matrix. This matches lomo-optim 0.1.1's fuse_update (design §6); tests compare it with a
// float64 transcription (tests/tools/make_fixtures.py).
#pragma once

#include <vector>

#include "core/memory.h"
#include "optim/sinks.h"

namespace lomo {

class AdaLomoStates {
 public:
  AdaLomoStates(const ModelParams& params, MemoryTracker& tracker, Backend& backend);
  float* row(const Param& p) { return states_[p.id].f32(); }               // (rows) or, 1-D, (n)
  float* col(const Param& p) { return states_[p.id].f32() + p.shape[0]; }  // (cols), 2-D only
  Buffer& state(int id) { return states_[id]; }  // row then col (or the vector's), for checkpoints

 private:
  std::vector<Buffer> states_;
};

class AdaLomoSink : public GradSink {
 public:
  // `step` counts from 1 and sets β. Each gradient is clamped and checked in `checks` (a new
  // pass of it), read by the trainer when the pass ends.
  AdaLomoSink(ReusableGradients& grads, GradientChecks& checks, AdaLomoStates& states,
              const LomoUpdate& update)
      : grads_(grads), checks_(checks), states_(states), u_(update) {
    checks_.begin();
  }
  float* gradient_buffer(const Param& p) override { return grads_.buffer_for(p); }
  void consume(Param& p, float* grad) override;

 private:
  ReusableGradients& grads_;
  GradientChecks& checks_;
  AdaLomoStates& states_;
  LomoUpdate u_;
};

}  // namespace lomo
