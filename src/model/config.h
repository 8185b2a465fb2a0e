// Model hyper-parameters of the LLaMA family, read from a Hugging Face config.json.
// Dimension vocabulary used across the codebase: d_model, n_layer, n_head, n_kv, head_dim, d_ff, V.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "ops/rope.h"

namespace lomo {

enum class Arch { Llama, Mistral, Qwen2 };
struct ModelConfig {
  Arch arch = Arch::Llama;
  int64_t d_model = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_kv = 0;
  int64_t head_dim = 0;
  int64_t d_ff = 0;
  int64_t vocab = 0;
  int64_t max_position = 2048;
  int64_t sliding_window = 0;  // 0 = none (Mistral)
  double rms_norm_eps = 1e-6;
  double initializer_range = 0.02;
  RopeConfig rope;
  bool tied_embeddings = false;
  bool qkv_bias = false;  // Qwen2 always; LLaMA with attention_bias
  bool o_bias = false;    // LLaMA with attention_bias
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;
  nlohmann::json original;  // the file as read, re-emitted on save with our fields updated
};

// Parses and validates; anything unsupported is a lomo::Error naming the field and `source`.
ModelConfig parse_config(const nlohmann::json& j, const std::string& source);
ModelConfig load_config(const std::string& path);
// A config.json that transformers' AutoModelForCausalLM loads (torch_dtype float32).
nlohmann::json config_to_json(const ModelConfig& c);

const char* arch_name(Arch a);  // "LlamaForCausalLM", ...

}  // namespace lomo
