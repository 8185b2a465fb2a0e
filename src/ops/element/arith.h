// Products and fused multiply-adds with a pinned rounding, for the element rules that must give
// the same bits on every backend. Compilers contract a·b + c into one fused multiply-add on their
// own (GCC under -march=native with FMA, nvcc by default) and need not choose the same product
// to fuse; where a rule spells the fusion out with fma_rn and the other products with mul_rn,
// neither compiler has a choice left. On the host these are std::fma and `*` (GCC vectorises
// both; on a CPU without FMA std::fma is a correct but slow library call); on the device the
// _rn intrinsics, which nvcc never contracts.
#pragma once

#include <cmath>

#include "core/hd.h"

namespace lomo {

// a·b, rounded once, never fused into a neighbouring add.
template <class T>
LOMO_HD T mul_rn(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == 4) {
    return __fmul_rn(a, b);
  } else {
    return __dmul_rn(a, b);
  }
#else
  return a * b;
#endif
}

// a·b + c, rounded once.
template <class T>
LOMO_HD T fma_rn(T a, T b, T c) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == 4) {
    return __fmaf_rn(a, b, c);
  } else {
    return __fma_rn(a, b, c);
  }
#else
  return std::fma(a, b, c);
#endif
}

}  // namespace lomo
