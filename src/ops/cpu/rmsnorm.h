// RMSNorm as Hugging Face LlamaRMSNorm: y = w ⊙ x · rstd, rstd = 1/sqrt(mean(x²) + eps).
// Accumulation rule: forward overwrites y and rstd; backward ADDS into dx (the residual stream's
// gradient arrives there already) and OVERWRITES dw.
#pragma once

#include <cstdint>

namespace lomo {

// y(N, d), rstd(N) ← x(N, d), w(d)
template <class T>
void rmsnorm_forward(T* y, T* rstd, const T* x, const T* w, int64_t N, int64_t d, double eps);

// y(N, d) ← x(N, d), rstd(N), w(d): forward's y again from its rstd, bit-identical (the same
// expression), so a caller can drop y and remake it when it is needed.
template <class T>
void rmsnorm_apply(T* y, const T* x, const T* rstd, const T* w, int64_t N, int64_t d);

// Derivation: with x̂ = x·r, y = w ⊙ x̂, r = (Σx²/d + eps)^(-1/2), ∂r/∂x_j = −r³ x_j / d, so
//   dx_j = r · w_j dy_j − (r³/d) · x_j · Σ_k w_k dy_k x_k,   dw_j = Σ_n dy_nj x̂_nj.
template <class T>
void rmsnorm_backward(T* dx, T* dw, const T* dy, const T* x, const T* rstd, const T* w, int64_t N,
                      int64_t d);

}  // namespace lomo
