// Counter-based random numbers: a value is a pure function of (seed, stream, index), so results
// do not depend on thread count or call order.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/hd.h"

namespace lomo {

LOMO_HD uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// counter_random(seed, stream, i) == splitmix64(counter_key(seed, stream) ^ i): loops over many
// indices of one stream compute the key once.
LOMO_HD uint64_t counter_key(uint64_t seed, uint64_t stream) {
  return splitmix64(splitmix64(seed) ^ stream);
}

LOMO_HD uint64_t counter_random(uint64_t seed, uint64_t stream, uint64_t index) {
  return splitmix64(counter_key(seed, stream) ^ index);
}

// Uniform in (0, 1).
LOMO_HD double counter_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return (static_cast<double>(counter_random(seed, stream, index) >> 11) + 0.5) * 0x1.0p-53;
}

// Standard normal (Box-Muller on two independent uniforms).
LOMO_HD double counter_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  const double u1 = counter_uniform(seed, stream, 2 * index);
  const double u2 = counter_uniform(seed, stream, 2 * index + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Inverted dropout's mask (LoRA's --lora-dropout): element i of a stream is kept when its uniform
// is ≥ p, so the mask is a pure function of (seed, stream, i) — the same in a recomputed forward,
// in backward and on any thread count.
LOMO_HD bool dropout_keeps(uint64_t key, uint64_t i, float p) {
  const double u = (static_cast<double>(splitmix64(key ^ i) >> 11) + 0.5) * 0x1.0p-53;
  return u >= p;
}

}  // namespace lomo
