// Functions compiled for the host and, in CUDA translation units, for the device too: the
// per-element maths every backend shares (16-bit conversions, rounding, the counter-based RNG,
// the element rules of ops/element/). One definition, so the CPU tests exercise the very code
// the GPU kernels run.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define LOMO_HD __host__ __device__ __forceinline__
#else
#define LOMO_HD inline
#endif

namespace lomo {

// The bits of a float and back, on either side.
LOMO_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
LOMO_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

}  // namespace lomo
