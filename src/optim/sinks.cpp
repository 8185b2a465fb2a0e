#include "optim/sinks.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/half.h"
#include "ops/cpu/gemm.h"

namespace lomo {

bool is_block_linear_weight(const Param& p) {
  return p.shape.size() == 2 && p.name.rfind("model.layers.", 0) == 0;
}

ReusableGradients::ReusableGradients(const ModelParams& params, int held_id, MemoryTracker& tracker,
                                     bool fused_linear)
    : held_id_(held_id) {
  int64_t largest_other = 0;
  for (const auto& p : params.all()) {
    if (p.id == held_id) {
      held_ = Buffer(tracker, MemCategory::Gradients, static_cast<size_t>(p.numel()) * 4);
    } else if (!(fused_linear && is_block_linear_weight(p))) {
      largest_other = std::max(largest_other, p.numel());
    }
  }
  shared_ = Buffer(tracker, MemCategory::Gradients, static_cast<size_t>(largest_other) * 4);
}

float* ReusableGradients::buffer_for(const Param& p) {
  if (p.id == held_id_) return held_.f32();
  LOMO_ASSERT(static_cast<size_t>(p.numel()) * 4 <= shared_.bytes(),
              p.name + " needs a gradient buffer the zero-buffer plan did not provide");
  return shared_.f32();
}

StoredGradients::StoredGradients(const ModelParams& params, MemoryTracker& tracker) {
  for (const auto& p : params.all()) {
    bufs_.emplace_back(tracker, MemCategory::Gradients, static_cast<size_t>(p.numel()) * 4);
  }
}

void clip_by_value(float* g, int64_t n, float v) {
  if (v <= 0) return;
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) g[i] = std::clamp(g[i], -v, v);
}

void check_finite(const float* g, int64_t n, const std::string& tensor, int64_t step) {
  int bad = 0;
#pragma omp parallel for reduction(| : bad)
  for (int64_t i = 0; i < n; ++i) bad |= !std::isfinite(g[i]);
  if (bad) {
    throw NonFiniteError(
        "step " + std::to_string(step) + ": the gradient of " + tensor +
        " contains inf or NaN; training stopped (lower --lr, or use --clip-grad-norm)");
  }
}

namespace {

// p ← p·(1 − lr·wd) − lr·c·g, computed in fp32 and written once (design §2 rule 5).
void apply_sgd(Param& p, const float* g, const LomoUpdate& u) {
  const float wd = (p.is_norm_or_bias && !u.decay_norms_and_biases) ? 0.0f : u.weight_decay;
  const float keep = 1.0f - u.lr * wd;
  const float step = u.lr * u.grad_coef;
  const int64_t n = p.numel();
  if (p.dtype == StorageDtype::F32) {
    float* w = p.f();
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) w[i] = w[i] * keep - step * g[i];
    return;
  }
  // 16-bit storage: read, update in fp32, write back once with the chosen rounding.
  uint16_t* w = p.h();
  RoundingMode r = u.rounding;
  r.step = u.step;
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) w[i] = store16(p, load16(p, i) * keep - step * g[i], r, i);
}

}  // namespace

void LomoSink::consume(Param& p, float* grad) {
  const int64_t n = p.numel();
  clip_by_value(grad, n, u_.clip_value);
  check_finite(grad, n, p.name, u_.step);
  apply_sgd(p, grad, u_);
}

bool LomoSink::fused_linear_update(Param& W, float* w32, WeightCache& wc,
                                   const LinearGradOperands& ops) {
  if (!u_.fused_linear || u_.clip_value > 0 || !is_block_linear_weight(W)) return false;
  const float wd = (W.is_norm_or_bias && !u_.decay_norms_and_biases) ? 0.0f : u_.weight_decay;
  const int64_t out = W.shape[0], in = W.shape[1];
  // W(out, in) = (1 − lr·wd)·W − lr·c · dYᵀ(out, N) · X(N, in)
  if (!w32) w32 = wc.view(W);  // (out, in)
  linear_weight_grad(ops, out, in, -u_.lr * u_.grad_coef, 1.0f - u_.lr * wd, w32);
  RoundingMode r = u_.rounding;
  r.step = u_.step;
  store_rounded(W, w32, r);  // a no-op for fp32, where w32 is W itself
  return true;
}

void NormSink::consume(Param& p, float* grad) {
  const int64_t n = p.numel();
  if (std::isfinite(overflow_at_) && first_bad_.empty()) {
    int over = 0;
#pragma omp parallel for reduction(| : over)
    for (int64_t i = 0; i < n; ++i) over |= !(std::fabs(grad[i]) <= overflow_at_);
    if (over) first_bad_ = p.name;
  }
  clip_by_value(grad, n, clip_value_);
  double s = 0;
#pragma omp parallel for reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(grad[i]) * grad[i];
  if (!std::isfinite(s) && first_bad_.empty()) first_bad_ = p.name;
  sumsq_ += s;
}

double NormSink::norm() const {
  return std::sqrt(sumsq_);
}

double global_norm(ModelParams& params, StoredGradients& grads) {
  double s = 0;
  for (auto& p : params.all()) {
    const float* g = grads.buffer_for(p);
    const int64_t n = p.numel();
    double t = 0;
#pragma omp parallel for reduction(+ : t)
    for (int64_t i = 0; i < n; ++i) t += static_cast<double>(g[i]) * g[i];
    s += t;
  }
  return std::sqrt(s);
}

void sgd_step(ModelParams& params, StoredGradients& grads, const LomoUpdate& u) {
  for (auto& p : params.all()) {
    float* g = grads.buffer_for(p);
    clip_by_value(g, p.numel(), u.clip_value);
    check_finite(g, p.numel(), p.name, u.step);
    apply_sgd(p, g, u);
  }
}

AdamW::AdamW(const ModelParams& params, const AdamWConfig& cfg, MemoryTracker& tracker)
    : cfg_(cfg) {
  for (const auto& p : params.all()) {
    m_.emplace_back(tracker, MemCategory::OptimizerStates, static_cast<size_t>(p.numel()) * 4);
    v_.emplace_back(tracker, MemCategory::OptimizerStates, static_cast<size_t>(p.numel()) * 4);
  }
}

void AdamW::step(ModelParams& params, StoredGradients& grads, const LomoUpdate& u) {
  ++t_;
  const float bc1 = 1.0f - std::pow(cfg_.beta1, static_cast<float>(t_));
  const float bc2 = 1.0f - std::pow(cfg_.beta2, static_cast<float>(t_));
  for (auto& p : params.all()) {
    float* g = grads.buffer_for(p);
    const int64_t n = p.numel();
    clip_by_value(g, n, u.clip_value);
    check_finite(g, n, p.name, u.step);
    const float wd = (p.is_norm_or_bias && !u.decay_norms_and_biases) ? 0.0f : u.weight_decay;
    float* w = p.f();
    float* m = m_[p.id].f32();
    float* v = v_[p.id].f32();
    const float b1 = cfg_.beta1, b2 = cfg_.beta2, eps = cfg_.eps, lr = u.lr, c = u.grad_coef;
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) {
      const float gi = c * g[i];
      m[i] = b1 * m[i] + (1.0f - b1) * gi;
      v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
      w[i] *= 1.0f - lr * wd;
      w[i] -= lr * (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
    }
  }
}

}  // namespace lomo
