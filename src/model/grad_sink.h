// The gradient sink (design §2 rule 1): backward hands each parameter's gradient to the active
// sink the moment it is complete. LOMO's sink applies the update at once and the buffer is
// reused for the next parameter; the norm pass sums squares; the classic baselines store.
// The model calls this interface; optim/ implements it. Buffers are in the backend's memory.
#pragma once

#include <optional>

#include "core/rounding.h"
#include "model/params.h"

namespace lomo {

// The zero-buffer update of a linear weight, as one GEMM on W's fp32 values:
//   W ← beta·W + alpha·dYᵀ·X, then written back to W's storage with `rounding`.
struct FusedLinearUpdate {
  float alpha = 0, beta = 1;
  RoundingMode rounding;
};

class GradSink {
 public:
  virtual ~GradSink() = default;
  // Whether p is trained this step. Backward never computes the gradient of a tensor that is
  // not (LoRA with a frozen base: only dX flows through it), and never asks for its buffer.
  virtual bool trains(const Param& p) const {
    (void)p;
    return true;
  }
  // Where backward writes p's gradient (p.numel() floats). Contents are unspecified: backward
  // overwrites it, or zeroes it first when it accumulates. Asking twice for the same parameter
  // before consume() returns the same buffer (the tied embedding relies on this).
  virtual float* gradient_buffer(const Param& p) = 0;
  // p's gradient in `grad` is complete. After this returns, the buffer may be handed out again.
  virtual void consume(Param& p, float* grad) = 0;
  // A sink that can apply its update to the linear weight W straight from the product's
  // operands, without the gradient ever existing, returns the coefficients; the model then runs
  // the GEMM (model/linear.cpp). The default materialises the gradient.
  virtual std::optional<FusedLinearUpdate> fused_linear_update(const Param& W) {
    (void)W;
    return std::nullopt;
  }
};

}  // namespace lomo
