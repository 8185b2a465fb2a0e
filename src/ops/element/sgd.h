// LOMO's SGD element rule (backend.h SgdStep): p' = p·keep − step·g in fp32, before the
// write-back's rounding. The product p·keep is the fused one (what GCC emitted for the CPU's
// embedding update before the rule moved here), spelt out so that every backend rounds alike.
#pragma once

#include "core/hd.h"
#include "ops/element/arith.h"

namespace lomo {

LOMO_HD float sgd_value(float p, float g, float keep, float step) {
  return fma_rn(p, keep, -mul_rn(step, g));
}

}  // namespace lomo
