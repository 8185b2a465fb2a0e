// How fp32 values are written back into 16-bit storage (design §4), as per-element functions
// every backend calls: bf16 by stochastic rounding from a counter-based stream keyed by (seed,
// step, tensor id, element index), so results are reproducible and independent of thread count
// and device; or to nearest. fp16 always rounds to nearest.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/half.h"
#include "core/hd.h"
#include "core/rng.h"

namespace lomo {

struct RoundingMode {
  Rounding rounding = Rounding::Stochastic;
  uint64_t seed = 0;
  int64_t step = 0;
};

// The random stream of tensor `id`'s stochastic rounding at step r.step.
LOMO_HD uint64_t rounding_key(const RoundingMode& r, int id) {
  const uint64_t stream = (static_cast<uint64_t>(r.step) << 24) ^ static_cast<uint64_t>(id);
  return counter_key(r.seed, stream);
}

// The bf16 code of x under the mode, for tensor `id`, element `i`.
LOMO_HD uint16_t round_bf16(float x, const RoundingMode& r, int id, int64_t i) {
  if (r.rounding == Rounding::Nearest) return f32_to_bf16(x);
  return f32_to_bf16_stochastic(
      x, static_cast<uint32_t>(splitmix64(rounding_key(r, id) ^ static_cast<uint64_t>(i))));
}

// Element i of a 16-bit tensor as fp32, and x written back in its format: bf16 with the chosen
// rounding, fp16 to nearest.
LOMO_HD float load16(StorageDtype t, const uint16_t* p, int64_t i) {
  return t == StorageDtype::F16 ? f16_to_f32(p[i]) : bf16_to_f32(p[i]);
}
LOMO_HD uint16_t store16(StorageDtype t, float x, const RoundingMode& r, int id, int64_t i) {
  return t == StorageDtype::F16 ? f32_to_f16(x) : round_bf16(x, r, id, i);
}

}  // namespace lomo
