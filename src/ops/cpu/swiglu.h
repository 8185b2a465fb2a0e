// SwiGLU gate of the LLaMA MLP: m = silu(g) ⊙ u, silu(g) = g·σ(g).
// Accumulation rule: forward overwrites m; backward overwrites dg and du, which may alias g and u.
#pragma once

#include <cstdint>

namespace lomo {

// m(n) ← g(n), u(n)
template <class T>
void swiglu_forward(T* m, const T* g, const T* u, int64_t n);

// dsilu/dg = σ(g)·(1 + g·(1 − σ(g))); dg = dm ⊙ u ⊙ dsilu/dg, du = dm ⊙ silu(g).
template <class T>
void swiglu_backward(T* dg, T* du, const T* dm, const T* g, const T* u, int64_t n);

}  // namespace lomo
