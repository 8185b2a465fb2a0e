#include "model/gguf_model.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "core/error.h"
#include "io/safetensors.h"

namespace lomo {

namespace {

const GgufValue& need(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.get(key);
  if (v == nullptr) throw Error(f.path() + ": metadata \"" + key + "\" is missing");
  return *v;
}

int64_t need_int(const GgufFile& f, const std::string& key) {
  const auto& v = need(f, key).value;
  if (!v.is_number_integer() || v.get<int64_t>() <= 0) {
    throw Error(f.path() + ": metadata \"" + key + "\" must be a positive integer, got " +
                v.dump());
  }
  return v.get<int64_t>();
}

double num_or(const GgufFile& f, const std::string& key, double def) {
  const GgufValue* v = f.get(key);
  if (v == nullptr) return def;
  if (!v->value.is_number()) throw Error(f.path() + ": metadata \"" + key + "\" must be a number");
  return v->value.get<double>();
}

}  // namespace

bool gguf_permutes_qk(const ModelConfig& c) {
  return c.arch == Arch::Llama || c.arch == Arch::Mistral;
}

std::string gguf_tensor_name(const std::string& hf) {
  static const std::pair<const char*, const char*> kLayer[] = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.o_proj.bias", "attn_output.bias"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
  };
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  const std::string prefix = "model.layers.";
  LOMO_ASSERT(hf.rfind(prefix, 0) == 0, "unknown tensor " + hf);
  const size_t dot = hf.find('.', prefix.size());
  const std::string layer = hf.substr(prefix.size(), dot - prefix.size());
  const std::string rest = hf.substr(dot + 1);
  for (const auto& [from, to] : kLayer) {
    if (rest == from) return "blk." + layer + "." + to;
  }
  LOMO_ASSERT(false, "unknown tensor " + hf);
}

void gguf_unpermute_rows(float* w, int64_t rows, int64_t cols, int64_t n_heads) {
  const int64_t hd = rows / n_heads, half = hd / 2;
  std::vector<float> tmp;  // (hd, cols) one head's rows
  for (int64_t h = 0; h < n_heads; ++h) {
    tmp.assign(w + h * hd * cols, w + (h + 1) * hd * cols);
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        std::memcpy(w + (h * hd + j * half + i) * cols, tmp.data() + (2 * i + j) * cols,
                    sizeof(float) * cols);
      }
    }
  }
}

void gguf_permute_rows(float* w, int64_t rows, int64_t cols, int64_t n_heads) {
  const int64_t hd = rows / n_heads, half = hd / 2;
  std::vector<float> tmp;  // (hd, cols) one head's rows
  for (int64_t h = 0; h < n_heads; ++h) {
    tmp.assign(w + h * hd * cols, w + (h + 1) * hd * cols);
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        std::memcpy(w + (h * hd + 2 * i + j) * cols, tmp.data() + (j * half + i) * cols,
                    sizeof(float) * cols);
      }
    }
  }
}

ModelConfig config_from_gguf(const GgufFile& f) {
  const GgufValue& archv = need(f, "general.architecture");
  if (!archv.value.is_string()) throw Error(f.path() + ": general.architecture is not a string");
  const std::string arch = archv.value.get<std::string>();
  nlohmann::json j;
  if (arch == "llama") {
    j["architectures"] = {"LlamaForCausalLM"};
  } else if (arch == "qwen2") {
    j["architectures"] = {"Qwen2ForCausalLM"};
  } else {
    throw Error(f.path() + ": general.architecture \"" + arch +
                "\" is not supported (llama, qwen2)");
  }
  const std::string a = arch + ".";
  j["hidden_size"] = need_int(f, a + "embedding_length");
  j["num_hidden_layers"] = need_int(f, a + "block_count");
  j["num_attention_heads"] = need_int(f, a + "attention.head_count");
  j["num_key_value_heads"] = f.get(a + "attention.head_count_kv")
                                 ? need_int(f, a + "attention.head_count_kv")
                                 : j["num_attention_heads"].get<int64_t>();
  j["intermediate_size"] = need_int(f, a + "feed_forward_length");
  j["max_position_embeddings"] =
      f.get(a + "context_length") ? need_int(f, a + "context_length") : 2048;
  j["rms_norm_eps"] = num_or(f, a + "attention.layer_norm_rms_epsilon", 1e-6);
  j["rope_theta"] = num_or(f, a + "rope.freq_base", 10000.0);
  if (f.get(a + "attention.key_length")) j["head_dim"] = need_int(f, a + "attention.key_length");
  const GgufTensorInfo* embd = f.find("token_embd.weight");
  if (embd == nullptr || embd->ne.size() != 2)
    throw Error(f.path() + ": tensor \"token_embd.weight\" is missing or not 2-D");
  j["vocab_size"] =
      f.get(a + "vocab_size") ? need_int(f, a + "vocab_size") : static_cast<int64_t>(embd->ne[1]);
  j["tie_word_embeddings"] = f.find("output.weight") == nullptr;
  if (arch == "llama") j["attention_bias"] = f.find("blk.0.attn_q.bias") != nullptr;
  if (const GgufValue* st = f.get(a + "rope.scaling.type")) {
    const std::string type = st->value.is_string() ? st->value.get<std::string>() : "";
    if (type == "linear") {
      j["rope_scaling"] = {{"rope_type", "linear"},
                           {"factor", num_or(f, a + "rope.scaling.factor", 1.0)}};
    } else if (type != "none") {
      throw Error(f.path() + ": " + a + "rope.scaling.type \"" + type +
                  "\" is not supported (none, linear)");
    }
  }
  if (f.find("rope_freqs.weight") != nullptr) {
    throw Error(
        f.path() +
        ": tensor \"rope_freqs.weight\" (LLaMA-3.1 RoPE scaling in GGUF) is not supported yet");
  }
  // Only integer ids: config.json keeps what it is given, and is written back as JSON.
  for (const char* k : {"bos", "eos"}) {
    const GgufValue* v = f.get(std::string("tokenizer.ggml.") + k + "_token_id");
    if (v != nullptr && v->value.is_number_integer()) j[std::string(k) + "_token_id"] = v->value;
  }
  return parse_config(j, f.path());
}

Model load_gguf_model(const std::string& path, MemoryTracker& tracker, StorageDtype dtype,
                      const ProgressFn& progress, int64_t staging_elems) {
  LOMO_ASSERT(staging_elems > 0, "load_gguf_model: empty staging");
  const GgufFile f(path);
  ModelConfig config = config_from_gguf(f);
  const auto specs = expected_params(config);
  std::set<std::string> used;
  for (const auto& s : specs) {
    const std::string g = gguf_tensor_name(s.name);
    const GgufTensorInfo* t = f.find(g);
    if (t == nullptr) throw Error(path + ": tensor \"" + g + "\" (" + s.name + ") is missing");
    std::vector<uint64_t> want(s.shape.rbegin(), s.shape.rend());
    if (t->ne != want) {
      std::vector<int64_t> have(t->ne.rbegin(), t->ne.rend());
      throw Error(path + ": tensor \"" + g + "\": expected " + shape_str(s.shape) +
                  " from the metadata, file has " + shape_str(have));
    }
    used.insert(g);
  }
  for (const auto& t : f.tensors()) {
    if (!used.count(t.name)) {
      throw Error(path + ": unexpected tensor \"" + t.name + "\" (not part of a " +
                  arch_name(config.arch) + " with this metadata)");
    }
  }
  ModelParams params(config, tracker, dtype);
  const bool permute = gguf_permutes_qk(config);
  std::vector<float> staging;  // (≤ rows_per_piece, cols) a piece of a 16-bit tensor
  const int64_t n = params.total_numel();  // progress counts parameters, not tensors
  int64_t done = 0;
  for (auto& p : params.all()) {
    if (progress) progress(done, n);
    done += p.numel();
    const GgufTensorInfo& t = *f.find(gguf_tensor_name(p.name));
    // As ggml stores it: a vector is one row.
    const bool matrix = p.shape.size() == 2;
    const int64_t rows = matrix ? p.shape[0] : 1, cols = matrix ? p.shape[1] : p.numel();
    const bool q = p.name.find("q_proj") != std::string::npos,
               k = p.name.find("k_proj") != std::string::npos;
    const bool perm = permute && (q || k);
    const int64_t heads = q ? config.n_head : config.n_kv;
    // A piece holds whole rows, and for permuted q and k whole heads (the permutation is per head).
    const int64_t unit = perm && matrix ? rows / heads : 1;  // rows
    const int64_t rows_per_piece = std::max<int64_t>(1, staging_elems / (cols * unit)) * unit;
    float* f32 = p.f32_or_null();
    if (f32 == nullptr) staging.resize(static_cast<size_t>(std::min(rows, rows_per_piece) * cols));
    for (int64_t r = 0; r < rows; r += rows_per_piece) {
      const int64_t m = std::min(rows_per_piece, rows - r);
      float* w = f32 != nullptr ? f32 + r * cols : staging.data();  // (m, cols)
      f.read_f32_rows(t, r, m, w);
      if (perm && matrix) gguf_unpermute_rows(w, m, cols, m / unit);
      if (perm && !matrix) gguf_unpermute_rows(w, cols, 1, heads);  // a bias: its rows are values
      if (f32 == nullptr) p.from_f32(w, r * cols, m * cols);
    }
  }
  if (progress) progress(n, n);
  return Model{std::move(config), std::move(params)};
}

}  // namespace lomo
