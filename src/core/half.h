// Scalar conversions between fp32 and the 16-bit storage formats (IEEE fp16, bfloat16).
#pragma once

#include <cstdint>

#include "core/hd.h"

namespace lomo {

LOMO_HD float bf16_to_f32(uint16_t h) {
  return bits_float(static_cast<uint32_t>(h) << 16);
}

LOMO_HD float f16_to_f32(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return bits_float(bits);
}

// Round to nearest even; NaN stays NaN (quiet).
LOMO_HD uint16_t f32_to_bf16(float f) {
  uint32_t bits = float_bits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// IEEE binary16, round to nearest even, overflow to inf, subnormals kept.
LOMO_HD uint16_t f32_to_f16(float f) {
  const uint32_t x = float_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // ≥ 65520: inf
  if (abs < 0x38800000u) {                                      // below 2^-14: subnormal or zero
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25 rounds to 0
    // value = m · 2^(e − 150); in units of the smallest subnormal 2^-24 that is m · 2^(e − 126).
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t r = 126 - e;  // 14 ≤ r ≤ 24
    uint32_t q = m >> r;
    const uint32_t rem = m & ((1u << r) - 1);
    const uint32_t half = 1u << (r - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return static_cast<uint16_t>(sign | q);
  }
  uint32_t h = ((abs - 0x38000000u) >> 13);  // rebias exponent 127 → 15, drop 13 bits
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

enum class Rounding { Nearest, Stochastic };

// fp32 -> bf16 by stochastic rounding: add a uniform 16-bit value below the cut, then truncate
// (design §4). `r` is the random value (its low 16 bits are used); non-finite values round to
// nearest. E[result] = x for finite x.
LOMO_HD uint16_t f32_to_bf16_stochastic(float f, uint32_t r) {
  uint32_t bits = float_bits(f);
  if ((bits & 0x7f800000u) == 0x7f800000u) return f32_to_bf16(f);
  const uint32_t sum = bits + (r & 0xffffu);
  // A carry into the exponent that would make a finite value infinite rounds down instead.
  if ((sum & 0x7f800000u) == 0x7f800000u) return static_cast<uint16_t>(bits >> 16);
  return static_cast<uint16_t>(sum >> 16);
}

}  // namespace lomo
