// The trainable tensors of a LLaMA-family model: their Hugging Face names, shapes and storage.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/memory.h"
#include "model/config.h"

namespace lomo {

// Storage of the 2-D tensors (embedding, head, linear weights). Norm weights and biases stay
// fp32 whatever the mode (a few KiB; llama.cpp does the same). Compute is always fp32.
enum class StorageDtype { F32, BF16, F16 };

struct ParamSpec {
  std::string name;  // Hugging Face name, e.g. "model.layers.3.mlp.up_proj.weight"
  std::vector<int64_t> shape;
  bool is_norm_or_bias = false;
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
  bool is_norm_or_bias = false;
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
  // Reads the values as fp32 into dst (numel), whatever the storage.
  void to_f32(float* dst) const;
  // Elements [begin, begin + n) as fp32 into dst (n).
  void to_f32(float* dst, int64_t begin, int64_t n) const;
  // Stores fp32 values (numel) in the parameter's dtype, rounding to nearest.
  void from_f32(const float* src);
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
  // Allocates every tensor of `c` (zero-filled) under MemCategory::Parameters; 2-D tensors in
  // `dtype`, 1-D in fp32.
  ModelParams(const ModelConfig& c, MemoryTracker& tracker, StorageDtype dtype = StorageDtype::F32);
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
