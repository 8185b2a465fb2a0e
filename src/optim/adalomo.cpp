#include "optim/adalomo.h"

#include <cmath>

namespace lomo {

AdaLomoStates::AdaLomoStates(const ModelParams& params, MemoryTracker& tracker,
                             Backend& backend) {
  for (const auto& p : params.all()) {
    const int64_t n = p.shape.size() == 2 ? p.shape[0] + p.shape[1] : p.numel();
    states_.emplace_back(backend.allocator(), tracker, MemCategory::OptimizerStates,
                         static_cast<size_t>(n) * 4);
    backend.fill(states_.back().f32(), 0.0f, n);  // the EMAs start at zero
  }
}

void AdaLomoSink::consume(Param& p, float* g) {
  Backend& be = grads_.backend();
  checks_.check(p, g, u_.clip_value, INFINITY);
  AdaLomoStep s;
  s.beta = 1.0 - std::pow(static_cast<double>(u_.step), -0.8);
  s.grad_coef = u_.grad_coef;
  s.lr = u_.lr;
  s.weight_decay = weight_decay_for(p.role, u_.weight_decay, u_.decay_norms_and_biases);
  s.rounding = u_.rounding;
  s.rounding.step = u_.step;
  be.adalomo_update(p.view(), g, states_.row(p), p.shape.size() == 2 ? states_.col(p) : nullptr,
                    s);
}

}  // namespace lomo
