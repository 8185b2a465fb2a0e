#include "ops/cpu/update.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "ops/element/update.h"

namespace lomo {

void clip_by_value(float* g, int64_t n, float v) {
  if (v <= 0) return;
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) g[i] = element::clip(g[i], v);
}

bool all_finite(const float* g, int64_t n) {
  int bad = 0;
#pragma omp parallel for reduction(| : bad)
  for (int64_t i = 0; i < n; ++i) bad |= !element::finite(g[i]);
  return !bad;
}

bool any_beyond(const float* g, int64_t n, float limit) {
  int over = 0;
#pragma omp parallel for reduction(| : over)
  for (int64_t i = 0; i < n; ++i) over |= element::beyond(g[i], limit);
  return over;
}

double sum_squares(const float* g, int64_t n) {
  double s = 0;
#pragma omp parallel for reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s = element::add_square(s, g[i]);
  return s;
}

void sgd_update(ParamView p, const float* g, const SgdStep& s) {
  const float keep = s.keep, step = s.step;
  const int64_t n = p.numel();
  if (p.dtype == StorageDtype::F32) {
    float* w = p.f32();
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) w[i] = element::sgd(w[i], g[i], keep, step);
    return;
  }
  // 16-bit storage: read, update in fp32, write back once with the chosen rounding.
  uint16_t* w = p.u16();
  const StorageDtype t = p.dtype;
  const RoundingMode r = s.rounding;
  const int id = p.id;
  const int64_t first = p.first;
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) {
    w[i] = store16(t, element::sgd(load16(t, w, i), g[i], keep, step), r, id, first + i);
  }
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
      for (int64_t j = 0; j < cols; ++j) m += element::adalomo_g2(g[i * cols + j]);
      r[i] = element::adalomo_state(beta, r[i], m, static_cast<double>(cols));
    }
    std::vector<double> colsum(cols, 0.0);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) colsum[j] += element::adalomo_g2(g[i * cols + j]);
    }
    for (int64_t j = 0; j < cols; ++j) {
      s[j] = element::adalomo_state(beta, s[j], colsum[j], static_cast<double>(rows));
    }
    double rmean = 0;
    for (int64_t i = 0; i < rows; ++i) rmean += r[i];
    rmean /= static_cast<double>(rows);
    // u_ij = g_ij · (r_i / mean r)^−½ · s_j^−½, written over g.
#pragma omp parallel for reduction(+ : usq)
    for (int64_t i = 0; i < rows; ++i) {
      const double rf = element::adalomo_row_factor(r[i], rmean);
      for (int64_t j = 0; j < cols; ++j) {
        const double u = element::adalomo_u(g[i * cols + j], rf, s[j]);
        g[i * cols + j] = static_cast<float>(u);
        usq = element::adalomo_add_square(usq, u);
      }
    }
  } else {
    float* v = row;
#pragma omp parallel for reduction(+ : usq)
    for (int64_t i = 0; i < n; ++i) {
      v[i] = element::adalomo_state(beta, v[i], element::adalomo_g2(g[i]));
      const double u = element::adalomo_u(g[i], v[i]);
      g[i] = static_cast<float>(u);
      usq = element::adalomo_add_square(usq, u);
    }
  }
  double wsq = 0;
#pragma omp parallel for reduction(+ : wsq)
  for (int64_t i = 0; i < n; ++i) wsq = element::adalomo_add_square(wsq, w_at(i));
  const auto [keep, step] = element::adalomo_coefs(st.lr, st.weight_decay, usq, wsq, n);
  if (f32) {
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) wf[i] = element::sgd(wf[i], g[i], keep, step);
    return;
  }
  const RoundingMode rm = st.rounding;
  const int id = p.id;
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) {
    wh[i] = store16(t, element::sgd(load16(t, wh, i), g[i], keep, step), rm, id, i);
  }
}

void adamw_update(ParamView p, const float* g, float* m, float* v, const AdamWStep& s) {
  LOMO_ASSERT(p.dtype == StorageDtype::F32, "AdamW updates fp32 parameters only");
  const int64_t n = p.numel();
  float* w = p.f32();
  const element::AdamWCoefs k =
      element::adamw_coefs(s.beta1, s.beta2, s.eps, s.lr, s.weight_decay, s.grad_coef,
                           s.bias_correction1, s.bias_correction2);
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) element::adamw(w[i], m[i], v[i], g[i], k);
}

}  // namespace lomo
