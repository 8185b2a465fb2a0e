#include "model/weights.h"

#include <algorithm>

#include "core/error.h"
#include "ops/lm_head.h"

namespace lomo {

namespace {

// The LM head (tied or not) converts itself block by block (ops/lm_head.h) and the embedding
// lookup reads 16-bit rows directly: neither goes through the cache.
struct Viewed {
  int64_t largest = 0;    // elements
  int64_t widest_in = 0;  // columns
};
Viewed viewed(const ModelParams& params) {
  Viewed v;
  for (const auto& p : params.all()) {
    if (p.dtype == StorageDtype::F32 || !reads_through_weight_cache(p.role)) continue;
    v.largest = std::max(v.largest, p.numel());
    v.widest_in = std::max(v.widest_in, p.shape.back());
  }
  return v;
}

}  // namespace

WeightCache::WeightCache(const ModelParams& params, MemoryTracker& tracker, Backend& backend)
    : tracker_(tracker), backend_(backend) {
  const Viewed v = viewed(params);
  largest_ = v.largest;
  row_block_ = weight_row_block_elems(v.largest, v.widest_in);
}

void WeightCache::set_bf16_gemm(bool on) {
  if (on != bf16_gemm_) scratch_.release();  // sized for the products' mode (scratch)
  bf16_gemm_ = on;
}

float* WeightCache::scratch(int64_t elems) {
  // Sized once, for what the run's products need: the whole largest tensor for fp32 products,
  // one row block for bf16 products.
  if (scratch_.empty()) {
    scratch_ = Buffer(backend_.allocator(), tracker_, MemCategory::Workspace,
                      static_cast<size_t>(bf16_gemm_ ? row_block_ : largest_) * 4);
  }
  LOMO_ASSERT(static_cast<size_t>(elems) * 4 <= scratch_.bytes(),
              "weight cache scratch too small: " + std::to_string(elems) + " elements");
  return scratch_.f32();
}

float* WeightCache::view(Param& p) {
  if (p.dtype == StorageDtype::F32) return p.f();
  float* s = scratch(p.numel());
  backend_.to_f32(s, p.view(), 0, p.numel());
  return s;
}

float* WeightCache::view_rows(Param& p, int64_t r, int64_t n) {
  LOMO_ASSERT(p.dtype != StorageDtype::F32, "view_rows of an fp32 tensor: " + p.name);
  const int64_t in = p.shape.back();
  float* s = scratch(n * in);
  backend_.to_f32(s, p.view(), r * in, n * in);
  return s;
}

int64_t WeightCache::update_rows(const Param& W) const {
  return std::clamp<int64_t>(row_block_ / W.shape.back(), 1, W.shape[0]);
}

WeightCache::Operand WeightCache::weight(Param& W) {
  const int64_t in = W.shape[1];
  if (bf16_gemm_) return {MatRef::bf16(W.h(), in), nullptr};
  float* w32 = view(W);
  return {MatRef::f32(w32, in), w32};
}

MatRef WeightCache::operand(const float* X, int64_t rows, int64_t cols, int slot) {
  if (!bf16_gemm_) return MatRef::f32(X, cols);
  for (const Held& h : in_place_) {
    if (h.x != X) continue;
    LOMO_ASSERT(h.rows == rows && h.cols == cols,
                "an input converted in place is read with another shape");
    return MatRef::bf16(reinterpret_cast<const uint16_t*>(X), cols);
  }
  const Held h = held_[slot];
  if (sharing_ && h.x == X && h.rows == rows && h.cols == cols) {
    return MatRef::bf16(act16_[slot].as<uint16_t>(), cols);  // converted earlier in the scope
  }
  uint16_t* x16 = act16(slot, rows * cols);  // (rows, cols)
  backend_.to_bf16(x16, X, rows * cols);
  if (sharing_) held_[slot] = {X, rows, cols};
  return MatRef::bf16(x16, cols);
}

void WeightCache::convert_in_place(float* X, int64_t rows, int64_t cols) {
  if (!bf16_gemm_) return;
  LOMO_ASSERT(!in_place(X), "an input converted in place twice");
  backend_.to_bf16_in_place(X, rows * cols);
  in_place_.push_back({X, rows, cols});
}

bool WeightCache::in_place(const float* X) const {
  return std::any_of(in_place_.begin(), in_place_.end(), [X](const Held& h) { return h.x == X; });
}

void WeightCache::forget_in_place(const float* X) {
  std::erase_if(in_place_, [X](const Held& h) { return h.x == X; });
}

uint16_t* WeightCache::act16(int slot, int64_t elems) {
  held_[slot] = Held{};
  Buffer& b = act16_[slot];
  ensure_capacity(b, backend_.allocator(), tracker_, MemCategory::Workspace,
                  static_cast<size_t>(elems) * 2);
  return b.as<uint16_t>();
}

void WeightCache::reserve_act16(int64_t wide, int64_t narrow) {
  act16(0, wide);
  act16(1, narrow);
}

Bf16Slots bf16_scratch_elems(const ModelConfig& c, int64_t N, const LmHeadTiles& head,
                             bool wide_in_place) {
  const int64_t narrow = std::max(c.d_model, c.n_head * c.head_dim);
  return {N * (wide_in_place ? narrow : std::max(narrow, c.d_ff)),
          std::max(N * narrow, head.tile_elems(c.vocab))};
}

int64_t weight_row_block_elems(int64_t largest, int64_t widest_in) {
  return std::max((largest + 7) / 8, widest_in);
}

}  // namespace lomo
