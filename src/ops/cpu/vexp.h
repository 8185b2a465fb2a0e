// exp for the element-wise loops of the CPU ops (softmax rows, the LM head's logsumexp, SiLU), in
// a form the compiler vectorises inside `#pragma omp simd` loops: libm's expf is one call per
// element. Float: Cody–Waite reduction x = n·ln2 + r, |r| ≤ ln2/2, Cephes' degree-6 polynomial,
// 2^n by exponent bits; max error 2 ulp over the clamped range [−87.3, 88] (below it returns
// exp(−87.3) ≈ 1.2e−38 instead of a subnormal or 0; above it exp(88), never inf). Double (the
// fp64 finite-difference tests) is std::exp.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace lomo {

inline float vexp(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.0f ? 88.0f : x);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;  // ln2 split: exact high part, then the low part
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

inline double vexp(double x) { return std::exp(x); }

}  // namespace lomo
