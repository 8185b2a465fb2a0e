// The trainable tensors of a LLaMA-family model: their Hugging Face names, shapes and storage.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/memory.h"
#include "model/config.h"

namespace lomo {

struct ParamSpec {
  std::string name;  // Hugging Face name, e.g. "model.layers.3.mlp.up_proj.weight"
  std::vector<int64_t> shape;
  bool is_norm_or_bias = false;
};

// Every tensor the config implies, in a fixed order (embedding, layers, final norm, head).
std::vector<ParamSpec> expected_params(const ModelConfig& c);

struct Param {
  int id = 0;  // index in ModelParams::all
  std::string name;
  std::vector<int64_t> shape;
  bool is_norm_or_bias = false;
  Buffer data;  // fp32, category Parameters

  int64_t numel() const;
  float* f() { return data.f32(); }
  const float* f() const { return data.f32(); }
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
  // Allocates every tensor of `c` (zero-filled) under MemCategory::Parameters.
  ModelParams(const ModelConfig& c, MemoryTracker& tracker);
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

 private:
  std::vector<Param> all_;
};

}  // namespace lomo
