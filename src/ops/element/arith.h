// Arithmetic with a pinned rounding, for the element rules that must give the same bits on every
// backend. Compilers contract a·b ± c into one fused multiply-add on their own (GCC under
// -march=native with FMA, nvcc by default) and need not choose the same products to fuse; where
// a rule spells the fusion out with rn::fma and every other operation with rn::mul, add, sub,
// div or sqrt, neither compiler has a choice left. On the host these are the plain operators and
// std::fma / std::sqrt (GCC vectorises them; on a CPU without FMA std::fma is a correct but slow
// library call); on the device the _rn intrinsics, which nvcc never contracts.
#pragma once

#include <cmath>

#include "core/hd.h"

namespace lomo::element {

namespace rn {

#if defined(__CUDA_ARCH__)
LOMO_HD float mul(float a, float b) {
  return __fmul_rn(a, b);
}
LOMO_HD float add(float a, float b) {
  return __fadd_rn(a, b);
}
LOMO_HD float sub(float a, float b) {
  return __fsub_rn(a, b);
}
LOMO_HD float div(float a, float b) {
  return __fdiv_rn(a, b);
}
LOMO_HD float sqrt(float a) {
  return __fsqrt_rn(a);
}
LOMO_HD float fma(float a, float b, float c) {
  return __fmaf_rn(a, b, c);
}
LOMO_HD double mul(double a, double b) {
  return __dmul_rn(a, b);
}
LOMO_HD double add(double a, double b) {
  return __dadd_rn(a, b);
}
LOMO_HD double sub(double a, double b) {
  return __dsub_rn(a, b);
}
LOMO_HD double div(double a, double b) {
  return __ddiv_rn(a, b);
}
LOMO_HD double sqrt(double a) {
  return __dsqrt_rn(a);
}
LOMO_HD double fma(double a, double b, double c) {
  return __fma_rn(a, b, c);
}
#else
LOMO_HD float mul(float a, float b) {
  return a * b;
}
LOMO_HD float add(float a, float b) {
  return a + b;
}
LOMO_HD float sub(float a, float b) {
  return a - b;
}
LOMO_HD float div(float a, float b) {
  return a / b;
}
LOMO_HD float sqrt(float a) {
  return std::sqrt(a);
}
LOMO_HD float fma(float a, float b, float c) {
  return std::fma(a, b, c);
}
LOMO_HD double mul(double a, double b) {
  return a * b;
}
LOMO_HD double add(double a, double b) {
  return a + b;
}
LOMO_HD double sub(double a, double b) {
  return a - b;
}
LOMO_HD double div(double a, double b) {
  return a / b;
}
LOMO_HD double sqrt(double a) {
  return std::sqrt(a);
}
LOMO_HD double fma(double a, double b, double c) {
  return std::fma(a, b, c);
}
#endif

}  // namespace rn

}  // namespace lomo::element
