// A parameter's element as fp32 and back (ops/tensor.h ParamView), the way sgd_update reads and
// writes it: fp32 as is, 16-bit storage through core/rounding.h (bf16 with the step's rounding
// mode, keyed by the tensor's id and the element's index; fp16 to nearest).
#pragma once

#include <cstdint>

#include "core/hd.h"
#include "core/rounding.h"
#include "ops/tensor.h"

namespace lomo {

// Element i of p as fp32.
LOMO_HD float param_load(const ParamView& p, int64_t i) {
  return p.dtype == StorageDtype::F32 ? static_cast<const float*>(p.data)[i]
                                      : load16(p.dtype, static_cast<const uint16_t*>(p.data), i);
}

// x written back at element i of p, rounded by r where p is 16-bit.
LOMO_HD void param_store(const ParamView& p, int64_t i, float x, const RoundingMode& r) {
  if (p.dtype == StorageDtype::F32) {
    static_cast<float*>(p.data)[i] = x;
  } else {
    static_cast<uint16_t*>(p.data)[i] = store16(p.dtype, x, r, p.id, i);
  }
}

}  // namespace lomo
