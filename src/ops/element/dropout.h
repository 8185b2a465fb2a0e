// Inverted dropout's element rule (the mask: core/rng.h dropout_keeps): y = keep · a·x with
// a = alpha / (1 − p), the scale of the kept elements.
#pragma once

#include <cstdint>

#include "core/hd.h"
#include "core/rng.h"
#include "ops/element/arith.h"

namespace lomo {

// alpha / (1 − p)
LOMO_HD float dropout_scale(float p, float alpha) {
  return alpha / (1.0f - p);
}

// Element i of keep ⊙ a·x for the stream `key`; a product of its own, never fused into an add
// that follows.
LOMO_HD float dropout_value(float x, float a, uint64_t key, int64_t i, float p) {
  return dropout_keeps(key, static_cast<uint64_t>(i), p) ? element::rn::mul(a, x) : 0.0f;
}

}  // namespace lomo
