// SwiGLU's element rules (ops/cpu/swiglu.h has the layer): m = silu(g)·u with silu(g) = g·σ(g).
// Each takes σ(g) from the caller, who computes it with its backend's exp (vexp on the CPU, expf
// on the GPU), so the rules are shared while the exp is not: the backends agree to a few ulp.
#pragma once

#include "core/hd.h"

namespace lomo {

// σ(g) from e = exp(−g).
template <class T>
LOMO_HD T sigmoid_from_exp(T e) {
  return T(1) / (T(1) + e);
}

// m = g·σ(g)·u
template <class T>
LOMO_HD T swiglu_value(T g, T u, T s) {
  return g * s * u;
}

// In the forward pass this was m = g·σ(g)·u, so dm/dg = u·σ(g)·(1 + g·(1 − σ(g))).
template <class T>
LOMO_HD T swiglu_dg(T dm, T g, T u, T s) {
  return dm * u * s * (T(1) + g * (T(1) - s));
}

// dm/du = g·σ(g)
template <class T>
LOMO_HD T swiglu_du(T dm, T g, T s) {
  return dm * g * s;
}

}  // namespace lomo
