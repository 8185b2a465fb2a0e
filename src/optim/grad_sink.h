// The gradient sink (design §2 rule 1): backward hands each parameter's gradient to the active
// sink the moment it is complete. LOMO's sink applies the update at once and the buffer is
// reused for the next parameter; the norm pass sums squares; the classic baselines store.
#pragma once

#include "model/params.h"
#include "model/weights.h"
#include "ops/cpu/weight_grad.h"

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
  // apply its update straight from the operands, without the gradient ever existing, does so
  // and returns true. The default materialises the gradient.
  // w32 is W's fp32 view (W's own storage in fp32 mode), which the sink may overwrite, or null
  // when the caller has not made one (bf16 products): then wc.view(W) makes it.
  virtual bool fused_linear_update(Param& W, float* w32, WeightCache& wc,
                                   const LinearGradOperands& ops) {
    (void)W, (void)w32, (void)wc, (void)ops;
    return false;
  }
};

}  // namespace lomo
