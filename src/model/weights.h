// Parameters as operands of the model's products, in the precision the run multiplies in (the
// one place that choice is made: every linear layer and the LM head ask here).
//  * fp32 products: an fp32 tensor is its own operand; a 16-bit tensor is converted into one
//    reusable scratch buffer (workspace, the size of the largest tensor other than the embedding
//    and the LM head, which never go through views), valid until the next view() call. Ops read
//    weights one tensor at a time, so one scratch suffices.
//  * bf16 products (`--bf16-gemm`): weights as stored; activations rounded to bf16 into two
//    scratch slots (workspace, grown on demand; bf16_scratch_elems gives what a step needs).
//    Only LOMO's fused update needs W in fp32 (its GEMM writes W before it is rounded back):
//    a block of rows at a time (view_rows), so the scratch is an eighth of the largest tensor.
// Every buffer comes from the backend's allocator; conversions run on the backend.
#pragma once

#include <cstdint>
#include <vector>

#include "core/memory.h"
#include "core/rounding.h"
#include "model/params.h"
#include "ops/backend.h"
#include "ops/lm_head.h"

namespace lomo {

class WeightCache {
 public:
  WeightCache(const ModelParams& params, MemoryTracker& tracker, Backend& backend);
  // For tensors outside a ModelParams: scratch for up to `largest_numel` 16-bit elements.
  WeightCache(MemoryTracker& tracker, Backend& backend, int64_t largest_numel)
      : tracker_(tracker), backend_(backend), largest_(largest_numel),
        row_block_(largest_numel) {}

  Backend& backend() { return backend_; }
  // p's values in fp32: p's own storage when fp32, else the scratch (valid until the next call).
  float* view(Param& p);

  // Rows [r, r + n) of p's values in fp32, in the scratch (valid until the next call); p 16-bit,
  // n·in ≤ the row block of bf16 products (update_rows).
  float* view_rows(Param& p, int64_t r, int64_t n);
  // Rows of W per block of its fused update when W has no fp32 view (bf16 products).
  int64_t update_rows(const Param& W) const;

  void set_bf16_gemm(bool on);
  bool bf16_gemm() const { return bf16_gemm_; }
  Precision precision() const { return bf16_gemm_ ? Precision::BF16 : Precision::F32; }
  // W(out, in) as a product operand: as stored for bf16 products, its fp32 view otherwise; then
  // `f32` is that view (W's own storage, or the scratch), which an update may write.
  struct Operand {
    MatRef ref;
    float* f32 = nullptr;  // (out, in), fp32 products only
  };
  Operand weight(Param& W);
  // X(rows, cols) as a product operand: itself for fp32 products, its bf16 copy in scratch slot
  // `slot` (0 or 1) for bf16 products, valid until the slot is used again.
  MatRef operand(const float* X, int64_t rows, int64_t cols, int slot);

  // bf16 products, for an input whose fp32 values nothing reads again (the d_ff-wide ones:
  // silu(gate)·up, and its gradients through gate and up): X(rows, cols) is rounded to bf16 in
  // its own storage (Backend::to_bf16_in_place), and operand(X, rows, cols, ·) returns that copy,
  // with no scratch slot, until forget_in_place(X) (before X's storage is written again) or
  // forget_all_in_place(). Its fp32 values are gone: X must not feed a LoRA adapter or a bias
  // gradient, which read them. Nothing happens for fp32 products.
  void convert_in_place(float* X, int64_t rows, int64_t cols);
  bool in_place(const float* X) const;
  void forget_in_place(const float* X);
  void forget_all_in_place() { in_place_.clear(); }

  // Scratch slot `slot` for direct use (it then holds no operand()'s conversion).
  uint16_t* act16(int slot, int64_t elems);
  // Sizes the slots for a step at once (LlamaModel::plan), so they are allocated once: slot 0
  // for `wide` elements, slot 1 for `narrow` (Bf16Slots).
  void reserve_act16(int64_t wide, int64_t narrow);
  // The slot for a product's second operand of `elems` elements beside one in the other slot
  // (the dW product dYᵀ·X): slot 1 when it fits there, else the wide slot 0.
  int slot_for(int64_t elems) const {
    return static_cast<size_t>(elems) * 2 <= act16_[1].bytes() ? 1 : 0;
  }

  // While one lives, operand() skips the conversion when its slot already holds X's bf16 copy
  // made in this scope (same pointer and shape): layers that read one input (q, k and v; gate
  // and up; their dW products in backward) convert it once instead of once each. The caller
  // promises that no X given to operand() changes within the scope.
  class SharedInputs {
   public:
    explicit SharedInputs(WeightCache& wc) : wc_(wc) { wc_.sharing_ = true; }
    ~SharedInputs() {
      wc_.sharing_ = false;
      wc_.held_[0] = wc_.held_[1] = Held{};
    }
    SharedInputs(const SharedInputs&) = delete;
    SharedInputs& operator=(const SharedInputs&) = delete;

   private:
    WeightCache& wc_;
  };

 private:
  struct Held {  // what a slot holds the bf16 copy of, within a SharedInputs scope
    const float* x = nullptr;
    int64_t rows = 0, cols = 0;
  };
  Held held_[2];
  bool sharing_ = false;
  std::vector<Held> in_place_;  // the inputs convert_in_place made, as (pointer, shape)
  MemoryTracker& tracker_;
  Backend& backend_;
  int64_t largest_ = 0;    // elements of the largest viewed tensor
  int64_t row_block_ = 0;  // elements of a row block of bf16 products (weight_row_block_elems)
  Buffer scratch_;
  float* scratch(int64_t elems);
  bool bf16_gemm_ = false;
  Buffer act16_[2];
};

// Elements of the two bf16 slots for N rows. Slot 1, narrow: a dW product's narrower operand,
// N · max(d_model, n_head·head_dim), or the step's LM-head logits tile (ops/lm_head.h: one pass
// or two, all rows or not) when that is larger. Slot 0, the other operand: N · max(d_model,
// n_head·head_dim) too when the d_ff-wide operands (silu(gate)·up, its gradients through gate
// and up) are converted in their own storage (`wide_in_place`: no adapter on the MLP), else
// N · d_ff.
struct Bf16Slots {
  int64_t wide = 0, narrow = 0;
};
Bf16Slots bf16_scratch_elems(const ModelConfig& c, int64_t N, const LmHeadTiles& head,
                             bool wide_in_place);

// Elements of the fp32 row block through which the fused update writes a 16-bit W under bf16
// products: an eighth of the largest viewed tensor, and at least one row of the widest.
int64_t weight_row_block_elems(int64_t largest, int64_t widest_in);


}  // namespace lomo
