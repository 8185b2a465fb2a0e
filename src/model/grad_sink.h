// The gradient sink (design §2 rule 1): backward hands each parameter's gradient to the active
// sink the moment it is complete. LOMO's sink applies the update at once and the buffer is
// reused for the next parameter; the norm pass sums squares; the classic baselines store.
// The model calls this interface; optim/ implements it. Buffers are in the backend's memory.
#pragma once

#include <optional>

#include "model/params.h"
#include "ops/backend.h"

namespace lomo {

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
  // A sink that can apply its update p ← keep·p − step·g where the op making g runs, without
  // the gradient ever existing, returns the coefficients (SgdStep); the model then folds it in:
  // a linear weight inside its weight-gradient GEMM (model/linear.cpp), the LM head per
  // vocabulary block inside its gradient pass (ops/lm_head.h), the embedding row by row
  // (Backend::embedding_update). The default materialises the gradient.
  virtual std::optional<SgdStep> fused_update(const Param& p) {
    (void)p;
    return std::nullopt;
  }
};

}  // namespace lomo
