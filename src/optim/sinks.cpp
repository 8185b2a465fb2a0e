#include "optim/sinks.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lomo {

ReusableGradients::ReusableGradients(const std::vector<Param>& params, int held_id,
                                     MemoryTracker& tracker, Backend& backend,
                                     bool no_buffer_for_fused)
    : backend_(backend), held_id_(held_id) {
  int64_t largest_other = 0;
  for (const auto& p : params) {
    if (no_buffer_for_fused && takes_fused_update(p.role)) {
      if (p.id == held_id) held_id_ = -1;  // the tied embedding is updated where it arises
    } else if (p.id == held_id) {
      held_ = Buffer(backend.allocator(), tracker, MemCategory::Gradients,
                     static_cast<size_t>(p.numel()) * 4);
    } else {
      largest_other = std::max(largest_other, p.numel());
    }
  }
  shared_ = Buffer(backend.allocator(), tracker, MemCategory::Gradients,
                   static_cast<size_t>(largest_other) * 4);
}

float* ReusableGradients::buffer_for(const Param& p) {
  if (p.id == held_id_) return held_.f32();
  LOMO_ASSERT(static_cast<size_t>(p.numel()) * 4 <= shared_.bytes(),
              p.name + " needs a gradient buffer the zero-buffer plan did not provide");
  return shared_.f32();
}

StoredGradients::StoredGradients(const std::vector<Param>& params, MemoryTracker& tracker,
                                 Backend& backend)
    : backend_(backend) {
  for (const auto& p : params) {
    bufs_.emplace_back(backend.allocator(), tracker, MemCategory::Gradients,
                       static_cast<size_t>(p.numel()) * 4);
  }
}

NonFiniteError nonfinite_gradient(int64_t step, const std::string& tensor) {
  return NonFiniteError("step " + std::to_string(step) + ": the gradient of " + tensor +
                        " contains inf or NaN; training stopped (lower --lr, or use "
                        "--clip-grad-norm)");
}

void check_finite(Backend& backend, const float* g, int64_t n, const std::string& tensor,
                  int64_t step) {
  if (!backend.all_finite(g, n)) throw nonfinite_gradient(step, tensor);
}

namespace {

// The coefficients of p ← p·(1 − lr·wd) − lr·c·g for tensor p, whether the update runs here or
// is folded into the op that makes g (LomoSink::fused_update).
SgdStep sgd_step_for(const Param& p, const LomoUpdate& u) {
  const float wd = weight_decay_for(p.role, u.weight_decay, u.decay_norms_and_biases);
  SgdStep s;
  s.keep = 1.0f - u.lr * wd;
  s.step = u.lr * u.grad_coef;
  s.rounding = u.rounding;
  s.rounding.step = u.step;
  return s;
}

// The update in fp32, written once (design §2 rule 5).
void apply_sgd(Backend& backend, Param& p, const float* g, const LomoUpdate& u) {
  backend.sgd_update(p.view(), g, sgd_step_for(p, u));
}

}  // namespace

void LomoSink::consume(Param& p, float* grad) {
  checks_.check(p, grad, u_.clip_value, INFINITY);
  apply_sgd(grads_.backend(), p, grad, u_);
}

std::optional<SgdStep> LomoSink::fused_update(const Param& p) {
  const bool fused = takes_fused_linear_update(p.role)
                         ? u_.fused_linear
                         : u_.fused_all && takes_fused_update(p.role);
  if (!fused) return std::nullopt;
  return sgd_step_for(p, u_);
}

void NormSink::consume(Param& p, float* grad) {
  checks_.check(p, grad, clip_value_, overflow_at_);
}

const GradientChecks::Result& NormSink::result() {
  if (!result_) result_ = checks_.read();
  return *result_;
}

double NormSink::norm() {
  return std::sqrt(result().sum_squares);
}

const std::string& NormSink::first_nonfinite() {
  return result().first_bad;
}

double global_norm(const std::vector<Param>& params, StoredGradients& grads) {
  double s = 0;
  for (const auto& p : params) s += grads.backend().sum_squares(grads.buffer_for(p), p.numel());
  return std::sqrt(s);
}

void sgd_step(std::vector<Param>& params, StoredGradients& grads, const LomoUpdate& u) {
  Backend& be = grads.backend();
  for (auto& p : params) {
    float* g = grads.buffer_for(p);
    be.clip_by_value(g, p.numel(), u.clip_value);
    check_finite(be, g, p.numel(), p.name, u.step);
    apply_sgd(be, p, g, u);
  }
}

AdamW::AdamW(const std::vector<Param>& params, const AdamWConfig& cfg, MemoryTracker& tracker,
             Backend& backend)
    : cfg_(cfg) {
  for (const auto& p : params) {
    const size_t bytes = static_cast<size_t>(p.numel()) * 4;
    m_.emplace_back(backend.allocator(), tracker, MemCategory::OptimizerStates, bytes);
    v_.emplace_back(backend.allocator(), tracker, MemCategory::OptimizerStates, bytes);
    // The moments start at zero (said here, not left to the allocator).
    backend.fill(m_.back().f32(), 0.0f, p.numel());
    backend.fill(v_.back().f32(), 0.0f, p.numel());
  }
}

void AdamW::step(std::vector<Param>& params, StoredGradients& grads, const LomoUpdate& u) {
  Backend& be = grads.backend();
  ++t_;
  AdamWStep s;
  s.beta1 = cfg_.beta1;
  s.beta2 = cfg_.beta2;
  s.eps = cfg_.eps;
  s.lr = u.lr;
  s.grad_coef = u.grad_coef;
  s.bias_correction1 = 1.0f - std::pow(cfg_.beta1, static_cast<float>(t_));
  s.bias_correction2 = 1.0f - std::pow(cfg_.beta2, static_cast<float>(t_));
  for (auto& p : params) {
    float* g = grads.buffer_for(p);
    const int64_t n = p.numel();
    be.clip_by_value(g, n, u.clip_value);
    check_finite(be, g, n, p.name, u.step);
    s.weight_decay = weight_decay_for(p.role, u.weight_decay, u.decay_norms_and_biases);
    be.adamw_update(p.view(), g, m_[p.id].f32(), v_[p.id].f32(), s);
  }
}

}  // namespace lomo
