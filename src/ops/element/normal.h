// fill_normal's element (ops/backend.h): stddev · N(0, 1) from the counter-based stream (seed,
// stream, i) of core/rng.h, for every backend.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/hd.h"
#include "core/rng.h"

namespace lomo::element {

// Element i of the stream, as fp32. On the host, counter_normal itself. On the device the same
// two uniforms and Box-Muller, with cos(2π·u2) taken as cospi(2·u2): the device's double cos
// carries a slow-path argument reduction in local memory (which this build refuses), needless
// for an argument in (0, 2π). The device's log and cospi are within 1-2 ulp of fp64 and 2π·u2 is
// not rounded first, so an element may differ from the host's in the last bit of the fp32 result
// (rarely: the fp64 value is rounded to fp32 after a relative error near 1e-16).
LOMO_HD float normal(uint64_t seed, uint64_t stream, uint64_t i, double stddev) {
#if defined(__CUDA_ARCH__)
  const double u1 = counter_uniform(seed, stream, 2 * i);
  const double u2 = counter_uniform(seed, stream, 2 * i + 1);
  return static_cast<float>(stddev * (::sqrt(-2.0 * ::log(u1)) * ::cospi(2.0 * u2)));
#else
  return static_cast<float>(stddev * counter_normal(seed, stream, i));
#endif
}

}  // namespace lomo::element
