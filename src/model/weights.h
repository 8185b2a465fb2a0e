// fp32 views of parameters for compute. An fp32 tensor is its own view; a bf16 tensor is
// converted into one reusable scratch buffer (workspace, the size of the largest tensor other
// than the embedding and the LM head, which never go through views), valid
// until the next view() call. Ops read weights through views one tensor at a time, so one
// scratch suffices. store() writes fp32 values back into a parameter's storage, rounding
// stochastically (counter-based: seed, step, tensor id, element) or to nearest.
#pragma once

#include <cstdint>

#include "core/half.h"
#include "core/memory.h"
#include "model/params.h"

namespace lomo {

class WeightCache {
 public:
  WeightCache(const ModelParams& params, MemoryTracker& tracker);
  // For tensors outside a ModelParams: scratch for up to `largest_numel` 16-bit elements.
  WeightCache(MemoryTracker& tracker, int64_t largest_numel)
      : tracker_(tracker), largest_(largest_numel) {}
  float* view(Param& p);

  // bf16 products (--bf16-gemm): the linear layers multiply bf16 weights as they are stored with
  // bf16 copies of their activations, made in two scratch slots of `elems` each (workspace,
  // grown on demand; bf16_scratch_elems gives the size a step needs).
  void set_bf16_gemm(bool on) { bf16_gemm_ = on; }
  bool bf16_gemm() const { return bf16_gemm_; }
  uint16_t* act16(int slot, int64_t elems);
  // Sizes both slots for a step at once (LlamaModel::plan), so they are allocated once.
  void reserve_act16(int64_t elems);

 private:
  MemoryTracker& tracker_;
  int64_t largest_ = 0;
  Buffer scratch_;
  bool bf16_gemm_ = false;
  Buffer act16_[2];
};

// Elements of each of the two bf16 slots for N rows: N · the widest linear dimension, or the LM
// head's logits tile (model/lm_head.h, one pass or two) when that is larger.
int64_t bf16_scratch_elems(const ModelConfig& c, int64_t N, bool head_one_pass);

struct RoundingMode {
  Rounding rounding = Rounding::Stochastic;
  uint64_t seed = 0;
  int64_t step = 0;
};

// p ← w32 in p's dtype (a no-op copy for fp32 when w32 is p's own storage).
void store_rounded(Param& p, const float* w32, const RoundingMode& r);

// One element: the bf16 code of x under the mode, for parameter `id`, element `i`.
inline uint16_t round_bf16(float x, const RoundingMode& r, int id, int64_t i);

// Element i of a 16-bit parameter as fp32, and x written back in its format: bf16 with the
// chosen rounding, fp16 to nearest (design §4).
inline float load16(const Param& p, int64_t i) {
  return p.dtype == StorageDtype::F16 ? f16_to_f32(p.h()[i]) : bf16_to_f32(p.h()[i]);
}
inline uint16_t store16(const Param& p, float x, const RoundingMode& r, int64_t i) {
  return p.dtype == StorageDtype::F16 ? f32_to_f16(x) : round_bf16(x, r, p.id, i);
}

// Bytes of scratch a model with these parameters needs in `dtype` (0 for fp32).
size_t weight_cache_bytes(const ModelParams& params);

}  // namespace lomo

#include "core/rng.h"

namespace lomo {

// The random stream of parameter `id`'s stochastic rounding at step r.step.
inline uint64_t rounding_key(const RoundingMode& r, int id) {
  const uint64_t stream = (static_cast<uint64_t>(r.step) << 24) ^ static_cast<uint64_t>(id);
  return counter_key(r.seed, stream);
}

inline uint16_t round_bf16(float x, const RoundingMode& r, int id, int64_t i) {
  if (r.rounding == Rounding::Nearest) return f32_to_bf16(x);
  return f32_to_bf16_stochastic(
      x, static_cast<uint32_t>(splitmix64(rounding_key(r, id) ^ static_cast<uint64_t>(i))));
}

}  // namespace lomo
