#include "model/weights.h"

#include <algorithm>

#include "core/error.h"
#include "model/lm_head.h"

namespace lomo {

namespace {

// The LM head (tied or not) converts itself block by block (model/lm_head.h) and the embedding
// lookup reads 16-bit rows directly: neither goes through the cache.
int64_t largest_viewed(const ModelParams& params) {
  int64_t largest = 0;
  for (const auto& p : params.all()) {
    if (p.dtype == StorageDtype::F32 || &p == params.embed || &p == params.lm_head) continue;
    largest = std::max(largest, p.numel());
  }
  return largest;
}

}  // namespace

WeightCache::WeightCache(const ModelParams& params, MemoryTracker& tracker)
    : tracker_(tracker), largest_(largest_viewed(params)) {}

float* WeightCache::view(Param& p) {
  if (p.dtype == StorageDtype::F32) return p.f();
  if (scratch_.empty())
    scratch_ = Buffer(tracker_, MemCategory::Workspace, static_cast<size_t>(largest_) * 4);
  LOMO_ASSERT(p.numel() <= largest_, "weight cache too small for " + p.name);
  p.to_f32(scratch_.f32());
  return scratch_.f32();
}

uint16_t* WeightCache::act16(int slot, int64_t elems) {
  Buffer& b = act16_[slot];
  ensure_capacity(b, tracker_, MemCategory::Workspace, static_cast<size_t>(elems) * 2);
  return b.as<uint16_t>();
}

void WeightCache::reserve_act16(int64_t elems) {
  for (int slot = 0; slot < 2; ++slot) act16(slot, elems);
}

int64_t bf16_scratch_elems(const ModelConfig& c, int64_t N, bool head_one_pass) {
  const int64_t widest = std::max({c.d_model, c.d_ff, c.n_head * c.head_dim});
  const LmHeadTiles t = lm_head_tiles(c.vocab, N, head_one_pass);
  return std::max(N * widest, t.tile_elems(c.vocab));
}

void store_rounded(Param& p, const float* w32, const RoundingMode& r) {
  const int64_t n = p.numel();
  if (p.dtype == StorageDtype::F32) {
    if (w32 != p.f()) std::copy(w32, w32 + n, p.f());
    return;
  }
  // store16 per element, with its branches and the random stream's key out of the loops.
  uint16_t* dst = p.h();
  if (p.dtype == StorageDtype::F16) {
#pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(w32[i]);
  } else if (r.rounding == Rounding::Nearest) {
#pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(w32[i]);
  } else {
    const uint64_t key = rounding_key(r, p.id);
#pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) {
      const auto bits = static_cast<uint32_t>(splitmix64(key ^ static_cast<uint64_t>(i)));
      dst[i] = f32_to_bf16_stochastic(w32[i], bits);
    }
  }
}

size_t weight_cache_bytes(const ModelParams& params) {
  return static_cast<size_t>(largest_viewed(params)) * 4;
}

}  // namespace lomo
