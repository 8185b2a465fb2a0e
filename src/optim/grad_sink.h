// The gradient sink (design §2 rule 1): backward hands each parameter's gradient to the active
// sink the moment it is complete. LOMO's sink applies the update at once and the buffer is
// reused for the next parameter; the norm pass sums squares; the classic baselines store.
#pragma once

#include "model/params.h"

namespace lomo {

class GradSink {
 public:
  virtual ~GradSink() = default;
  // Where backward writes p's gradient (p.numel() floats). Contents are unspecified: backward
  // overwrites it, or zeroes it first when it accumulates. Asking twice for the same parameter
  // before consume() returns the same buffer (the tied embedding relies on this).
  virtual float* gradient_buffer(const Param& p) = 0;
  // p's gradient in `grad` is complete. After this returns, the buffer may be handed out again.
  virtual void consume(Param& p, float* grad) = 0;
  // The zero-buffer path for a linear weight W(out, in) whose gradient is dYᵀ·X: a sink that can
  // apply its update straight from dY(N, out) and X(N, in), without the gradient ever existing,
  // does so and returns true. The default materialises the gradient.
  // w32 is W's fp32 view (W's own storage in fp32 mode), which the sink may overwrite.
  virtual bool fused_linear_update(Param& W, float* w32, const float* dY, const float* X,
                                   int64_t N) {
    (void)W, (void)w32, (void)dY, (void)X, (void)N;
    return false;
  }
};

}  // namespace lomo
