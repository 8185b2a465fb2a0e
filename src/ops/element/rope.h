// RoPE's element rule (ops/rope.h has the convention): the pair (a, b) = (x_i, x_{i+h}) rotated
// by an angle with cosine c and sine s; backward passes −s. The first product of each output is
// the fused one (what GCC emitted for the CPU loop before the rule moved here), spelt out so
// that every backend rounds alike.
#pragma once

#include "core/hd.h"
#include "ops/element/arith.h"

namespace lomo {

// a' = a·c − b·s
template <class T>
LOMO_HD T rope_first(T a, T b, T c, T s) {
  return element::rn::fma(a, c, -element::rn::mul(b, s));
}

// b' = b·c + a·s
template <class T>
LOMO_HD T rope_second(T a, T b, T c, T s) {
  return element::rn::fma(b, c, element::rn::mul(a, s));
}

}  // namespace lomo
