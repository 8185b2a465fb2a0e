// LoRA adapters (Hu et al. 2021) on the linear layers of the decoder blocks, as PEFT builds them:
//   Y = X·Wᵀ + b + s·(drop(X)·Aᵀ)·Bᵀ,   A (r, in), B (out, r),   s = alpha / r (rsLoRA: alpha / √r).
// The adapters are fp32 tensors of role ParamRole::Adapter in optimizer group 1, named as PEFT
// names them in adapter_model.safetensors (`base_model.model.model.layers.3.self_attn.q_proj.
// lora_A.weight`), kept beside the model's own parameters (ModelParams), never inside them: the
// base model's tensors, their export and their checkpoints are unchanged by LoRA. The products
// run in model/linear.cpp; PEFT files are read and written by model/lora_files.h.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/memory.h"
#include "model/config.h"
#include "model/params.h"

namespace lomo {

// The linear layers an adapter can sit on: PEFT's target module names without "_proj".
enum class LoraTarget { Q, K, V, O, Gate, Up, Down };
inline constexpr int kLoraTargetCount = 7;
const char* lora_target_module(LoraTarget t);  // "q_proj", …, "down_proj"
// "q,v" or "q_proj,v_proj" (any mix; "all" = the seven). Throws lomo::Error naming an unknown
// target and listing the architecture's seven.
std::vector<LoraTarget> parse_lora_targets(const std::string& list);
std::string lora_targets_string(const std::vector<LoraTarget>& targets);  // "q,v"

struct LoraConfig {
  int64_t rank = 0;  // 0: no adapters
  float alpha = 16;
  float dropout = 0;   // on the adapter's input, training only (inverted dropout)
  bool rslora = false;  // scaling alpha / √r instead of alpha / r
  std::vector<LoraTarget> targets;
  float scaling() const;
  bool enabled() const { return rank > 0; }
  bool operator==(const LoraConfig&) const = default;
};

// (out, in) of target t's weight in a model of config c.
std::array<int64_t, 2> lora_target_shape(const ModelConfig& c, LoraTarget t);
// Elements of every adapter (A and B of each targeted layer), without allocating.
int64_t lora_param_count(const LoraConfig& lora, const ModelConfig& c);
// Whether an adapter sits on gate, up or down: the MLP's d_ff-wide products then keep their fp32
// inputs, which the adapters read (WeightCache::convert_in_place).
bool lora_targets_mlp(const LoraConfig& lora);
// The widest input of a targeted layer: the dropout scratch holds N rows of it.
int64_t lora_max_in(const LoraConfig& lora, const ModelConfig& c);
// Rank ≥ 1 and ≤ the narrower side of every targeted layer, alpha > 0, dropout in [0, 1),
// at least one target: throws lomo::Error saying which flag is wrong and why.
void check_lora_config(const LoraConfig& lora, const ModelConfig& c);

// PEFT's key of an adapter tensor: base_model.model.model.layers.<l>.<module>.lora_<A|B>.weight.
std::string peft_key(int64_t layer, LoraTarget t, bool is_a);

struct LoraAdapter {
  Param* A = nullptr;  // (r, in)
  Param* B = nullptr;  // (out, r)
};

class LoraAdapters {
 public:
  // Allocates every adapter (zero-filled, fp32, category Parameters). check_lora_config first.
  LoraAdapters(const LoraConfig& lora, const ModelConfig& c, MemoryTracker& tracker);
  LoraAdapters(LoraAdapters&&) = default;

  // PEFT's initialisation: A Kaiming-uniform (torch's kaiming_uniform_(a=√5): U(−1/√in, 1/√in)),
  // B zero, so the adapted model starts as the base model. Counter-based random numbers keyed by
  // (seed, tensor, element): the same seed gives the same adapters on any thread count.
  void init(uint64_t seed);

  const LoraConfig& config() const { return cfg_; }
  // The adapter on layer l's target t, or null when t is not targeted.
  const LoraAdapter* find(int64_t layer, LoraTarget t) const;
  std::vector<Param>& all() { return all_; }
  const std::vector<Param>& all() const { return all_; }
  int64_t total_numel() const;

  // W ← W + s·B·A for every adapted layer (fp32 arithmetic, rounded to nearest into 16-bit W):
  // the model then computes without adapters what it computed with them.
  void merge_into(ModelParams& params) const;

 private:
  LoraConfig cfg_;
  std::vector<Param> all_;
  std::vector<std::array<LoraAdapter, kLoraTargetCount>> layers_;
};

// The base weight target t adapts in layer l.
Param& lora_base_weight(LayerParams& p, LoraTarget t);

}  // namespace lomo
