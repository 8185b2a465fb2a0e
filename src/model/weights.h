// Parameters as operands of the model's products, in the precision the run multiplies in (the
// one place that choice is made: every linear layer and the LM head ask here).
//  * fp32 products: an fp32 tensor is its own operand; a 16-bit tensor is converted into one
//    reusable scratch buffer (workspace, the size of the largest tensor other than the embedding
//    and the LM head, which never go through views), valid until the next view() call. Ops read
//    weights one tensor at a time, so one scratch suffices.
//  * bf16 products (`--bf16-gemm`): weights as stored; activations rounded to bf16 into two
//    scratch slots (workspace, grown on demand; bf16_scratch_elems gives what a step needs).
// Every buffer comes from the backend's allocator; conversions run on the backend.
#pragma once

#include <cstdint>

#include "core/memory.h"
#include "core/rounding.h"
#include "model/params.h"
#include "ops/backend.h"

namespace lomo {

class WeightCache {
 public:
  WeightCache(const ModelParams& params, MemoryTracker& tracker, Backend& backend);
  // For tensors outside a ModelParams: scratch for up to `largest_numel` 16-bit elements.
  WeightCache(MemoryTracker& tracker, Backend& backend, int64_t largest_numel)
      : tracker_(tracker), backend_(backend), largest_(largest_numel) {}

  Backend& backend() { return backend_; }
  // p's values in fp32: p's own storage when fp32, else the scratch (valid until the next call).
  float* view(Param& p);

  void set_bf16_gemm(bool on) { bf16_gemm_ = on; }
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

  // Scratch slot `slot` for direct use (it then holds no operand()'s conversion).
  uint16_t* act16(int slot, int64_t elems);
  // Sizes both slots for a step at once (LlamaModel::plan), so they are allocated once.
  void reserve_act16(int64_t elems);

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
  MemoryTracker& tracker_;
  Backend& backend_;
  int64_t largest_ = 0;
  Buffer scratch_;
  bool bf16_gemm_ = false;
  Buffer act16_[2];
};

// Elements of each of the two bf16 slots for N rows: N · the widest linear dimension, or the LM
// head's logits tile (ops/lm_head.h, one pass or two) when that is larger.
int64_t bf16_scratch_elems(const ModelConfig& c, int64_t N, bool head_one_pass);

// Bytes of scratch a model with these parameters needs in `dtype` (0 for fp32).
size_t weight_cache_bytes(const ModelParams& params);

}  // namespace lomo
