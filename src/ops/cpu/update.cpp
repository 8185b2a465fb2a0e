#include "ops/cpu/update.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace lomo {

void clip_by_value(float* g, int64_t n, float v) {
  if (v <= 0) return;
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) g[i] = std::clamp(g[i], -v, v);
}

bool all_finite(const float* g, int64_t n) {
  int bad = 0;
#pragma omp parallel for reduction(| : bad)
  for (int64_t i = 0; i < n; ++i) bad |= !std::isfinite(g[i]);
  return !bad;
}

bool any_beyond(const float* g, int64_t n, float limit) {
  int over = 0;
#pragma omp parallel for reduction(| : over)
  for (int64_t i = 0; i < n; ++i) over |= !(std::fabs(g[i]) <= limit);
  return over;
}

double sum_squares(const float* g, int64_t n) {
  double s = 0;
#pragma omp parallel for reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(g[i]) * g[i];
  return s;
}

void sgd_update(ParamView p, const float* g, const SgdStep& s) {
  const float keep = s.keep, step = s.step;
  const int64_t n = p.numel();
  if (p.dtype == StorageDtype::F32) {
    float* w = p.f32();
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) w[i] = w[i] * keep - step * g[i];
    return;
  }
  // 16-bit storage: read, update in fp32, write back once with the chosen rounding.
  uint16_t* w = p.u16();
  const StorageDtype t = p.dtype;
  const RoundingMode r = s.rounding;
  const int id = p.id;
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) w[i] = store16(t, load16(t, w, i) * keep - step * g[i], r, id, i);
}

void adalomo_update(ParamView p, float* g, float* row, float* col, const AdaLomoStep& st) {
  const int64_t n = p.numel();
  const double beta = st.beta;
  const float c = st.grad_coef;
  const bool f32 = p.dtype == StorageDtype::F32;
  float* wf = f32 ? p.f32() : nullptr;
  uint16_t* wh = f32 ? nullptr : p.u16();
  const StorageDtype t = p.dtype;
  auto w_at = [&](int64_t i) { return f32 ? wf[i] : load16(t, wh, i); };
  // g ← c·g in place: the buffer is ours until we return.
  if (c != 1.0f) {
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) g[i] *= c;
  }
  double usq = 0;  // Σ u², for RMS(u)
  if (col != nullptr) {
    const int64_t rows = p.rows, cols = p.cols;
    float* r = row;
    float* s = col;
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
    float* v = row;
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
  const double lr_t = st.lr * std::max(1e-3, std::sqrt(wsq / static_cast<double>(n)));
  const float keep = static_cast<float>(1.0 - lr_t * st.weight_decay);
  const float step = static_cast<float>(lr_t / std::max(1.0, rms_u));
  if (f32) {
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) wf[i] = wf[i] * keep - step * g[i];
    return;
  }
  const RoundingMode rm = st.rounding;
  const int id = p.id;
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) wh[i] = store16(t, load16(t, wh, i) * keep - step * g[i], rm, id, i);
}

void adamw_update(ParamView p, const float* g, float* m, float* v, const AdamWStep& s) {
  LOMO_ASSERT(p.dtype == StorageDtype::F32, "AdamW updates fp32 parameters only");
  const int64_t n = p.numel();
  float* w = p.f32();
  const float b1 = s.beta1, b2 = s.beta2, eps = s.eps, lr = s.lr, c = s.grad_coef;
  const float wd = s.weight_decay, bc1 = s.bias_correction1, bc2 = s.bias_correction2;
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) {
    const float gi = c * g[i];
    m[i] = b1 * m[i] + (1.0f - b1) * gi;
    v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
    w[i] *= 1.0f - lr * wd;
    w[i] -= lr * (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
  }
}

}  // namespace lomo
