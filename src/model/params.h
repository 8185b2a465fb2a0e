// The trainable tensors of a LLaMA-family model: their Hugging Face names, shapes and storage.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/memory.h"
#include "model/config.h"
#include "ops/tensor.h"

namespace lomo {
class Backend;  // ops/backend.h
}

namespace lomo {

// Storage (StorageDtype, core/dtype.h) of the 2-D tensors (embedding, head, linear weights). Norm
// weights and biases stay fp32 whatever the mode (a few KiB; llama.cpp does the same). Compute is
// always fp32.

// What a tensor is to the model. The role, never the tensor's name, decides how it is updated
// (style.md habit 13); the rules that read it are stated once, below.
enum class ParamRole {
  Embedding,    // (V, d_model) token embedding; with tied weights also the LM head
  BlockLinear,  // (out, in) weight of a linear layer inside a decoder block
  Norm,         // (d_model) RMSNorm weight
  Bias,         // (out) bias of a linear layer
  LmHead,       // (V, d_model) untied output projection
  Adapter,      // a LoRA adapter's A or B (model/lora.h), kept beside ModelParams
};

// The zero-buffer LOMO update (W ← (1 − lr·wd)·W − lr·c·dYᵀX inside the weight-gradient GEMM,
// no gradient buffer) applies to these tensors whenever it is on (ZeroBufferRule::fused_update):
// the block linear weights.
inline bool takes_fused_linear_update(ParamRole r) { return r == ParamRole::BlockLinear; }
// And, when no gradient is materialised at all (ZeroBufferRule::no_buffer), to every matrix: the
// LM head inside its gradient pass, per vocabulary block (ops/lm_head.h), and the embedding row
// by row where its backward would scatter (Backend::embedding_update). Norms and biases keep the
// one shared buffer (their gradients are sums over tokens, a few KiB).
inline bool takes_fused_update(ParamRole r) {
  return r == ParamRole::BlockLinear || r == ParamRole::LmHead || r == ParamRole::Embedding;
}
// The tensors the model reads through the weight cache (model/weights.h) when they are 16-bit:
// the embedding is looked up row by row and the LM head converts itself block by block.
inline bool reads_through_weight_cache(ParamRole r) { return r == ParamRole::BlockLinear; }
// The tensors `--decay-norms-biases off` exempts from weight decay.
inline bool is_norm_or_bias(ParamRole r) { return r == ParamRole::Norm || r == ParamRole::Bias; }
// Weight decay of a tensor of role r under the run's setting.
inline float weight_decay_for(ParamRole r, float weight_decay, bool decay_norms_and_biases) {
  return is_norm_or_bias(r) && !decay_norms_and_biases ? 0.0f : weight_decay;
}

// The layer a tensor belongs to, for residency (model/residency.h): its block, or kOutsideBlocks
// for the embedding, the final norm and the LM head.
inline constexpr int64_t kOutsideBlocks = -1;

// A 16-bit tensor is made or loaded through fp32 staging this many elements at a time (16 MiB):
// neither holds an fp32 copy of the largest tensor (0.49 GiB for LLaMA-7B's embedding), so a
// run's peak is training's, not this staging's.
inline constexpr int64_t kStagingElems = int64_t{4} << 20;

// Calls f(begin, n) for the pieces [begin, begin + n) of `numel` elements, `piece` at most each,
// in order.
template <class F>
void for_each_piece(int64_t numel, int64_t piece, F&& f) {
  for (int64_t b = 0; b < numel; b += piece) f(b, std::min(piece, numel - b));
}

struct ParamSpec {
  std::string name;  // Hugging Face name, e.g. "model.layers.3.mlp.up_proj.weight"
  std::vector<int64_t> shape;
  ParamRole role = ParamRole::BlockLinear;
  int64_t layer = kOutsideBlocks;
};

// Every tensor the config implies, in a fixed order (embedding, layers, final norm, head).
std::vector<ParamSpec> expected_params(const ModelConfig& c);
int64_t spec_numel(const ParamSpec& s);
// Total elements of expected_params(c), without allocating anything.
int64_t count_params(const ModelConfig& c);

struct Param {
  int id = 0;  // index in ModelParams::all
  std::string name;
  std::vector<int64_t> shape;
  ParamRole role = ParamRole::BlockLinear;
  int64_t layer = kOutsideBlocks;
  // The optimizer group: 0 for the model's own tensors, 1 for LoRA's adapters (model/lora.h),
  // which have their own optimizer (AdamW) and learning rate.
  int group = 0;
  // A shard of a tensor sharded over ranks (dist/param_shards.h): the index of its first element
  // in the whole tensor; 0 for a whole tensor.
  int64_t first = 0;
  StorageDtype dtype = StorageDtype::F32;
  Buffer data;  // numel elements of dtype, category Parameters

  int64_t numel() const;
  // fp32 storage only (norms and biases always; everything in fp32 mode).
  float* f();
  const float* f() const;
  float* f32_or_null() { return dtype == StorageDtype::F32 ? data.f32() : nullptr; }
  // bf16 storage only.
  uint16_t* h() { return data.as<uint16_t>(); }
  const uint16_t* h() const { return data.as<uint16_t>(); }
  // Whether the values are in host memory (loading, export and these host conversions need it).
  bool on_host() const;
  // Reads the values as fp32 into dst (numel), whatever the storage. Host memory only.
  void to_f32(float* dst) const;
  // Elements [begin, begin + n) as fp32 into dst (n).
  void to_f32(float* dst, int64_t begin, int64_t n) const;
  // Stores fp32 values (numel) in the parameter's dtype, rounding to nearest. Host memory only.
  void from_f32(const float* src);
  // The same for elements [begin, begin + n) from src(n).
  void from_f32(const float* src, int64_t begin, int64_t n);
  // Stores fp32 values (numel) as from_f32 does, wherever the tensor lives (a device's through
  // a host copy in the storage dtype).
  void from_f32(const float* src, Backend& backend);
  // The tensor as ops see it: (rows, cols), or (1, n) for a vector.
  ParamView view();
};

struct LayerParams {
  Param* attn_norm;     // (d_model)
  Param* wq;            // (n_head*head_dim, d_model)
  Param* wk;            // (n_kv*head_dim, d_model)
  Param* wv;            // (n_kv*head_dim, d_model)
  Param* wo;            // (d_model, n_head*head_dim)
  Param* bq = nullptr;  // (n_head*head_dim), Qwen2 / attention_bias
  Param* bk = nullptr;  // (n_kv*head_dim)
  Param* bv = nullptr;  // (n_kv*head_dim)
  Param* bo = nullptr;  // (d_model), LLaMA attention_bias only
  Param* mlp_norm;      // (d_model)
  Param* w_gate;        // (d_ff, d_model)
  Param* w_up;          // (d_ff, d_model)
  Param* w_down;        // (d_model, d_ff)
};

class ModelParams {
 public:
  // Allocates every tensor of `c` under MemCategory::Parameters from `allocator` (the host's by
  // default; every allocator zero-fills); 2-D tensors in `dtype`, 1-D in fp32.
  ModelParams(const ModelConfig& c, MemoryTracker& tracker, StorageDtype dtype = StorageDtype::F32,
              Allocator& allocator = host_allocator());
  ModelParams(ModelParams&&) = default;

  std::vector<Param>& all() { return all_; }
  const std::vector<Param>& all() const { return all_; }
  Param* find(const std::string& name);

  Param* embed = nullptr;  // (V, d_model)
  std::vector<LayerParams> layers;
  Param* final_norm = nullptr;  // (d_model)
  Param* lm_head = nullptr;     // (V, d_model); nullptr when tied to embed

  int64_t total_numel() const;
  int64_t largest_numel() const;

  // Moves every tensor into `to` (a backend's device memory, or host_allocator() to bring them
  // back for export), copying through `backend`; each old buffer is freed as soon as its tensor
  // is copied, so the move needs one tensor's worth of extra memory. ParamViews taken before
  // the move are stale after it.
  void move_to(Allocator& to, Backend& backend, MemoryTracker& tracker);

 private:
  std::vector<Param> all_;
};

}  // namespace lomo
