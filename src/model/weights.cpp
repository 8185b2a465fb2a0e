#include "model/weights.h"

#include <algorithm>

#include "core/error.h"
#include "ops/lm_head.h"

namespace lomo {

namespace {

// The LM head (tied or not) converts itself block by block (ops/lm_head.h) and the embedding
// lookup reads 16-bit rows directly: neither goes through the cache.
int64_t largest_viewed(const ModelParams& params) {
  int64_t largest = 0;
  for (const auto& p : params.all()) {
    if (p.dtype == StorageDtype::F32 || !reads_through_weight_cache(p.role)) continue;
    largest = std::max(largest, p.numel());
  }
  return largest;
}

}  // namespace

WeightCache::WeightCache(const ModelParams& params, MemoryTracker& tracker, Backend& backend)
    : tracker_(tracker), backend_(backend), largest_(largest_viewed(params)) {}

float* WeightCache::view(Param& p) {
  if (p.dtype == StorageDtype::F32) return p.f();
  if (scratch_.empty()) {
    scratch_ = Buffer(backend_.allocator(), tracker_, MemCategory::Workspace,
                      static_cast<size_t>(largest_) * 4);
  }
  LOMO_ASSERT(p.numel() <= largest_, "weight cache too small for " + p.name);
  backend_.to_f32(scratch_.f32(), p.view(), 0, p.numel());
  return scratch_.f32();
}

WeightCache::Operand WeightCache::weight(Param& W) {
  const int64_t in = W.shape[1];
  if (bf16_gemm_) return {MatRef::bf16(W.h(), in), nullptr};
  float* w32 = view(W);
  return {MatRef::f32(w32, in), w32};
}

MatRef WeightCache::operand(const float* X, int64_t rows, int64_t cols, int slot) {
  if (!bf16_gemm_) return MatRef::f32(X, cols);
  const Held h = held_[slot];
  if (sharing_ && h.x == X && h.rows == rows && h.cols == cols) {
    return MatRef::bf16(act16_[slot].as<uint16_t>(), cols);  // converted earlier in the scope
  }
  uint16_t* x16 = act16(slot, rows * cols);  // (rows, cols)
  backend_.to_bf16(x16, X, rows * cols);
  if (sharing_) held_[slot] = {X, rows, cols};
  return MatRef::bf16(x16, cols);
}

uint16_t* WeightCache::act16(int slot, int64_t elems) {
  held_[slot] = Held{};
  Buffer& b = act16_[slot];
  ensure_capacity(b, backend_.allocator(), tracker_, MemCategory::Workspace,
                  static_cast<size_t>(elems) * 2);
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

size_t weight_cache_bytes(const ModelParams& params) {
  return static_cast<size_t>(largest_viewed(params)) * 4;
}

}  // namespace lomo
