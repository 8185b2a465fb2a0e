// LoRA's gradient sink: the adapters' gradients (r·(in + out) per adapted layer, small) are kept,
// every one, for the AdamW step after backward; the base model's go to the base sink (LOMO,
// AdaLomo, the norm pass), or, for a frozen base (--base-lr 0), are never computed at all
// (GradSink::trains). The base keeps LOMO's fused update, zero-buffer where it applies.
#pragma once

#include <optional>

#include "model/grad_sink.h"
#include "optim/sinks.h"

namespace lomo {

class LoraSink : public GradSink {
 public:
  // base: the sink of the model's own tensors, or null for a frozen base.
  LoraSink(GradSink* base, StoredGradients& adapter_grads)
      : base_(base), adapter_grads_(adapter_grads) {}
  bool trains(const Param& p) const override {
    return p.role == ParamRole::Adapter || (base_ != nullptr && base_->trains(p));
  }
  float* gradient_buffer(const Param& p) override {
    return p.role == ParamRole::Adapter ? adapter_grads_.buffer_for(p) : base_->gradient_buffer(p);
  }
  void consume(Param& p, float* grad) override {
    if (p.role != ParamRole::Adapter) base_->consume(p, grad);  // adapters: kept for the step
  }
  std::optional<SgdStep> fused_update(const Param& p) override {
    return base_ ? base_->fused_update(p) : std::nullopt;
  }

 private:
  GradSink* base_;
  StoredGradients& adapter_grads_;
};

}  // namespace lomo
