// The optimizers' per-element rules (ops/backend.h's gradient checks and updates), defined once
// for every backend (core/hd.h): the CPU loops of ops/cpu/update.cpp and the kernels of
// ops/cuda/update.cu call these, so the same inputs give the same fp32 values on both devices.
//
// Rounding is spelled out. The host compiler contracts a·b ± c into one fma wherever it can (GCC's
// C++ default is -ffp-contract=fast, and the build targets -march=native, which has FMA), and
// nvcc does the same on the device, but the two need not pick the same products. So every rule
// below writes each fma the CPU loops have always been compiled to (GCC 12, -O2) with rn::fma,
// and each separately rounded operation with rn::mul/add/sub/div/sqrt (ops/element/arith.h).
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "core/hd.h"
#include "core/rounding.h"
#include "ops/element/arith.h"

namespace lomo::element {

// ---- gradient checks ------------------------------------------------------------------------

// g clamped to [−v, v] with std::clamp's comparisons (NaN stays NaN); the upper bound first, so
// that GCC emits min and blend instead of a branch.
LOMO_HD float clip(float g, float v) {
  const float below = v < g ? v : g;
  return g < -v ? -v : below;
}

// Whether g is finite (neither ±inf nor NaN).
LOMO_HD bool finite(float g) {
  return std::fabs(g) <= FLT_MAX;
}

// Whether g is "beyond" the limit: |g| > limit, or NaN (an fp16 overflow).
LOMO_HD bool beyond(float g, float limit) {
  return !(std::fabs(g) <= limit);
}

// s + g², the fp64 sum of squares' step (one fma).
LOMO_HD double add_square(double s, float g) {
  const double x = g;
  return rn::fma(x, x, s);
}

// ---- writing back ---------------------------------------------------------------------------

// The bf16 code of x stochastically rounded at element i of the stream `key` (core/rounding.h's
// round_bf16 with the key rounding_key(r, id) computed once per tensor).
LOMO_HD uint16_t bf16_stochastic(float x, uint64_t key, int64_t i) {
  return f32_to_bf16_stochastic(x,
                                static_cast<uint32_t>(splitmix64(key ^ static_cast<uint64_t>(i))));
}

// store16 (core/rounding.h) for one tensor, its branches and key decided once: what a kernel
// carries instead of the RoundingMode. Store16::of(t, r, id)(x, i) == store16(t, x, r, id, i).
struct Store16 {
  StorageDtype dtype = StorageDtype::BF16;
  Rounding rounding = Rounding::Nearest;
  uint64_t key = 0;
  int64_t first = 0;  // element i is element first + i of the whole tensor (ParamView::first)

  static Store16 of(StorageDtype t, const RoundingMode& r, int id, int64_t first = 0) {
    return {t, r.rounding, rounding_key(r, id), first};
  }
  LOMO_HD uint16_t operator()(float x, int64_t i) const {
    if (dtype == StorageDtype::F16) return f32_to_f16(x);
    if (rounding == Rounding::Nearest) return f32_to_bf16(x);
    return bf16_stochastic(x, key, first + i);
  }
};

// ---- LOMO / SGD -----------------------------------------------------------------------------

// w·keep − step·g in fp32 (SgdStep): w·keep fused, step·g rounded first.
LOMO_HD float sgd(float w, float g, float keep, float step) {
  return rn::fma(w, keep, -rn::mul(step, g));
}

// ---- AdamW (torch.optim.AdamW) --------------------------------------------------------------

// AdamWStep's coefficients as the element rule uses them (ops/backend.h).
struct AdamWCoefs {
  float beta1, beta2, one_minus_beta1, one_minus_beta2;
  float lr, decay, eps, grad_coef, bias_correction1, bias_correction2;
};

// decay = 1 − lr·wd (one fma).
LOMO_HD AdamWCoefs adamw_coefs(float beta1, float beta2, float eps, float lr, float weight_decay,
                               float grad_coef, float bias_correction1, float bias_correction2) {
  return {beta1, beta2,     1.0f - beta1,     1.0f - beta2,    lr, rn::fma(-lr, weight_decay, 1.0f),
          eps,   grad_coef, bias_correction1, bias_correction2};
}

// One element, in place, in torch's order:
//   g ← c·g;  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g·g
//   w ← w·(1 − lr·wd);  w ← w − lr·(m / bc1) / (√(v / bc2) + eps)
// w·decay is rounded before the subtraction (torch's two in-place ops; on the CPU it is stored
// to w, which may alias m and v, so the compiler keeps it a separate product).
LOMO_HD void adamw(float& w, float& m, float& v, float g, const AdamWCoefs& k) {
  const float gi = rn::mul(k.grad_coef, g);
  m = rn::fma(k.beta1, m, rn::mul(k.one_minus_beta1, gi));
  v = rn::fma(k.beta2, v, rn::mul(rn::mul(k.one_minus_beta2, gi), gi));
  w = rn::mul(w, k.decay);
  const float num = rn::mul(k.lr, rn::div(m, k.bias_correction1));
  w = rn::sub(w, rn::div(num, rn::add(rn::sqrt(rn::div(v, k.bias_correction2)), k.eps)));
}

// ---- AdaLomo (optim/adalomo.h) --------------------------------------------------------------

// G = g² + 1e-30 in fp64 (one fma).
LOMO_HD double adalomo_g2(float g) {
  const double x = g;
  return rn::fma(x, x, 1e-30);
}

// A factored state: β·old + (1 − β)·sum / count, the mean of `count` G's, stored as fp32.
LOMO_HD float adalomo_state(double beta, float old, double sum, double count) {
  return static_cast<float>(
      rn::fma(beta, static_cast<double>(old), rn::div(rn::mul(rn::sub(1.0, beta), sum), count)));
}

// A vector's state: β·old + (1 − β)·G, stored as fp32.
LOMO_HD float adalomo_state(double beta, float old, double g2) {
  return static_cast<float>(
      rn::fma(beta, static_cast<double>(old), rn::mul(rn::sub(1.0, beta), g2)));
}

// A matrix row's factor (r_i / mean r)^−½.
LOMO_HD double adalomo_row_factor(float r, double rmean) {
  return rn::div(1.0, rn::sqrt(rn::div(static_cast<double>(r), rmean)));
}

// u = g · row_factor / √s_j (matrix) and u = g / √v (vector).
LOMO_HD double adalomo_u(float g, double row_factor, float s) {
  return rn::div(rn::mul(static_cast<double>(g), row_factor), rn::sqrt(static_cast<double>(s)));
}
LOMO_HD double adalomo_u(float g, float v) {
  return rn::div(static_cast<double>(g), rn::sqrt(static_cast<double>(v)));
}

// s + x², for Σu² and Σθ² (one fma).
LOMO_HD double adalomo_add_square(double s, double x) {
  return rn::fma(x, x, s);
}

// The update's coefficients from Σu² and Σθ² over n elements: lr_t = lr·max(1e-3, RMS(θ)),
// keep = 1 − lr_t·wd, step = lr_t / max(1, RMS(u)); then θ ← sgd(θ, u, keep, step).
struct AdaLomoCoefs {
  float keep, step;
};
LOMO_HD AdaLomoCoefs adalomo_coefs(float lr, float weight_decay, double usq, double wsq,
                                   int64_t n) {
  const double nd = static_cast<double>(n);
  const double rms_u = rn::sqrt(rn::div(usq, nd));
  const double rms_w = rn::sqrt(rn::div(wsq, nd));
  const double lr_t = rn::mul(static_cast<double>(lr), 1e-3 < rms_w ? rms_w : 1e-3);
  const float keep = static_cast<float>(rn::fma(-lr_t, static_cast<double>(weight_decay), 1.0));
  const float step = static_cast<float>(rn::div(lr_t, 1.0 < rms_u ? rms_u : 1.0));
  return {keep, step};
}

}  // namespace lomo::element
