#include "optim/adalomo.h"

#include <algorithm>
#include <cmath>

namespace lomo {

AdaLomoStates::AdaLomoStates(const ModelParams& params, MemoryTracker& tracker) {
  for (const auto& p : params.all()) {
    const int64_t n = p.shape.size() == 2 ? p.shape[0] + p.shape[1] : p.numel();
    states_.emplace_back(tracker, MemCategory::OptimizerStates, static_cast<size_t>(n) * 4);
  }
}

void AdaLomoSink::consume(Param& p, float* g) {
  const int64_t n = p.numel();
  clip_by_value(g, n, u_.clip_value);
  check_finite(g, n, p.name, u_.step);
  const double beta = 1.0 - std::pow(static_cast<double>(u_.step), -0.8);
  const float c = u_.grad_coef;
  const bool f32 = p.dtype == StorageDtype::F32;
  float* wf = f32 ? p.f() : nullptr;
  uint16_t* wh = f32 ? nullptr : p.h();
  auto w_at = [&](int64_t i) { return f32 ? wf[i] : load16(p, i); };
  // g ← c·g in place: the buffer is ours until we return.
  if (c != 1.0f) {
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) g[i] *= c;
  }
  double usq = 0;  // Σ u², for RMS(u)
  if (p.shape.size() == 2) {
    const int64_t rows = p.shape[0], cols = p.shape[1];
    float* r = states_.row(p);
    float* s = states_.col(p);
#pragma omp parallel for
    for (int64_t i = 0; i < rows; ++i) {
      double m = 0;
      for (int64_t j = 0; j < cols; ++j)
        m += static_cast<double>(g[i * cols + j]) * g[i * cols + j] + 1e-30;
      r[i] = static_cast<float>(beta * r[i] + (1 - beta) * m / static_cast<double>(cols));
    }
    std::vector<double> colsum(cols, 0.0);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j)
        colsum[j] += static_cast<double>(g[i * cols + j]) * g[i * cols + j] + 1e-30;
    }
    for (int64_t j = 0; j < cols; ++j) {
      s[j] = static_cast<float>(beta * s[j] + (1 - beta) * colsum[j] / static_cast<double>(rows));
    }
    double rmean = 0;
    for (int64_t i = 0; i < rows; ++i) rmean += r[i];
    rmean /= static_cast<double>(rows);
    // u_ij = g_ij · (r_i / mean r)^−½ · s_j^−½, written over g.
#pragma omp parallel for reduction(+ : usq)
    for (int64_t i = 0; i < rows; ++i) {
      const double rf = 1.0 / std::sqrt(r[i] / rmean);
      for (int64_t j = 0; j < cols; ++j) {
        const double u = g[i * cols + j] * rf / std::sqrt(static_cast<double>(s[j]));
        g[i * cols + j] = static_cast<float>(u);
        usq += u * u;
      }
    }
  } else {
    float* v = states_.row(p);
#pragma omp parallel for reduction(+ : usq)
    for (int64_t i = 0; i < n; ++i) {
      v[i] =
          static_cast<float>(beta * v[i] + (1 - beta) * (static_cast<double>(g[i]) * g[i] + 1e-30));
      const double u = g[i] / std::sqrt(static_cast<double>(v[i]));
      g[i] = static_cast<float>(u);
      usq += u * u;
    }
  }
  const double rms_u = std::sqrt(usq / static_cast<double>(n));
  double wsq = 0;
#pragma omp parallel for reduction(+ : wsq)
  for (int64_t i = 0; i < n; ++i) wsq += static_cast<double>(w_at(i)) * w_at(i);
  const double lr_t = u_.lr * std::max(1e-3, std::sqrt(wsq / static_cast<double>(n)));
  const float wd = (p.is_norm_or_bias && !u_.decay_norms_and_biases) ? 0.0f : u_.weight_decay;
  const float keep = static_cast<float>(1.0 - lr_t * wd);
  const float step = static_cast<float>(lr_t / std::max(1.0, rms_u));
  if (f32) {
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) wf[i] = wf[i] * keep - step * g[i];
    return;
  }
  RoundingMode r = u_.rounding;
  r.step = u_.step;
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) wh[i] = store16(p, load16(p, i) * keep - step * g[i], r, i);
}

}  // namespace lomo
