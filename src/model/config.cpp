#include "model/config.h"

#include <cmath>
#include <fstream>

#include "core/error.h"

namespace lomo {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::Llama:
      return "LlamaForCausalLM";
    case Arch::Mistral:
      return "MistralForCausalLM";
    case Arch::Qwen2:
      return "Qwen2ForCausalLM";
  }
  return "?";
}

namespace {

const char* model_type(Arch a) {
  switch (a) {
    case Arch::Llama:
      return "llama";
    case Arch::Mistral:
      return "mistral";
    case Arch::Qwen2:
      return "qwen2";
  }
  return "?";
}

// Upper bounds, far above any released model (the largest today: d_model 16384, 126 layers,
// d_ff 53248, 128 query heads, a vocabulary of 256k, a context of 10M), and low enough that
// every size derived from them (a tensor's elements, the parameter count, bytes) fits in int64,
// and that a few bytes of config.json cannot make the loader list billions of tensors.
constexpr int64_t kMaxWidth = int64_t{1} << 20;  // hidden_size, intermediate_size, head_dim,
                                                 // and num_attention_heads · head_dim
constexpr int64_t kMaxLayers = int64_t{1} << 12;
constexpr int64_t kMaxHeads = int64_t{1} << 12;
constexpr int64_t kMaxVocab = int64_t{1} << 24;
constexpr int64_t kMaxPositions = int64_t{1} << 24;  // also sliding_window

class Reader {
 public:
  Reader(const nlohmann::json& j, std::string source) : j_(j), source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& why) const {
    throw Error(source_ + ": field \"" + field + "\": " + why);
  }
  bool has(const std::string& k) const { return j_.contains(k) && !j_[k].is_null(); }

  int64_t positive_int(const std::string& k, int64_t max) const {
    if (!has(k)) fail(k, "missing (required)");
    const auto& v = j_[k];
    // An unsigned value above INT64_MAX must not wrap into the int64 range.
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(max)) ||
        v.get<int64_t>() <= 0 || v.get<int64_t>() > max) {
      fail(k, "must be a positive integer at most " + std::to_string(max) + ", got " +
                  v.dump().substr(0, 60));
    }
    return v.get<int64_t>();
  }
  int64_t positive_int_or(const std::string& k, int64_t def, int64_t max) const {
    return has(k) ? positive_int(k, max) : def;
  }
  double positive_num_or(const std::string& k, double def) const {
    if (!has(k)) return def;
    if (!j_[k].is_number() || !(j_[k].get<double>() > 0) || !std::isfinite(j_[k].get<double>())) {
      fail(k, "must be a positive finite number, got " + j_[k].dump().substr(0, 60));
    }
    return j_[k].get<double>();
  }
  bool bool_or(const std::string& k, bool def) const {
    if (!has(k)) return def;
    if (!j_[k].is_boolean()) fail(k, "must be true or false, got " + j_[k].dump());
    return j_[k].get<bool>();
  }
  const nlohmann::json& operator[](const std::string& k) const { return j_[k]; }

 private:
  const nlohmann::json& j_;
  std::string source_;
};

int64_t token_id_or(const nlohmann::json& j, const std::string& k) {
  if (!j.contains(k) || j[k].is_null()) return -1;
  if (j[k].is_number_integer()) return j[k].get<int64_t>();
  if (j[k].is_array() && !j[k].empty() && j[k][0].is_number_integer())
    return j[k][0].get<int64_t>();
  return -1;
}

}  // namespace

ModelConfig parse_config(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw Error(source + ": config must be a JSON object");
  Reader r(j, source);
  ModelConfig c;
  c.original = j;

  std::string arch;
  if (r.has("architectures")) {
    if (!j["architectures"].is_array() || j["architectures"].empty() ||
        !j["architectures"][0].is_string()) {
      r.fail("architectures", "must be a list of strings");
    }
    arch = j["architectures"][0].get<std::string>();
  } else if (r.has("model_type") && j["model_type"].is_string()) {
    const std::string mt = j["model_type"].get<std::string>();
    arch = mt == "llama"     ? "LlamaForCausalLM"
           : mt == "mistral" ? "MistralForCausalLM"
           : mt == "qwen2"   ? "Qwen2ForCausalLM"
                             : mt;
  } else {
    r.fail("architectures", "missing (and no \"model_type\" to fall back on)");
  }
  if (arch == "LlamaForCausalLM") {
    c.arch = Arch::Llama;
  } else if (arch == "MistralForCausalLM") {
    c.arch = Arch::Mistral;
  } else if (arch == "Qwen2ForCausalLM") {
    c.arch = Arch::Qwen2;
  } else {
    r.fail("architectures", "\"" + arch +
                                "\" is not supported (supported: LlamaForCausalLM, "
                                "MistralForCausalLM, Qwen2ForCausalLM)");
  }

  c.d_model = r.positive_int("hidden_size", kMaxWidth);
  c.n_layer = r.positive_int("num_hidden_layers", kMaxLayers);
  c.n_head = r.positive_int("num_attention_heads", kMaxHeads);
  c.n_kv = r.positive_int_or("num_key_value_heads", c.n_head, kMaxHeads);
  c.d_ff = r.positive_int("intermediate_size", kMaxWidth);
  c.vocab = r.positive_int("vocab_size", kMaxVocab);
  c.max_position = r.positive_int_or("max_position_embeddings", 2048, kMaxPositions);
  if (c.n_head % c.n_kv != 0) {
    r.fail("num_key_value_heads", std::to_string(c.n_kv) + " does not divide num_attention_heads " +
                                      std::to_string(c.n_head));
  }
  if (r.has("head_dim")) {
    c.head_dim = r.positive_int("head_dim", kMaxWidth);
  } else {
    if (c.d_model % c.n_head != 0) {
      r.fail("num_attention_heads", "does not divide hidden_size and no head_dim is given");
    }
    c.head_dim = c.d_model / c.n_head;
  }
  if (c.head_dim % 2 != 0) r.fail("head_dim", "must be even for rotary embeddings");
  if (c.n_head * c.head_dim > kMaxWidth) {
    r.fail("num_attention_heads", std::to_string(c.n_head) + " heads of " +
                                      std::to_string(c.head_dim) + " exceed " +
                                      std::to_string(kMaxWidth) + " attention columns");
  }
  c.rms_norm_eps = r.positive_num_or("rms_norm_eps", 1e-6);
  c.initializer_range = r.positive_num_or("initializer_range", 0.02);
  c.rope.theta = r.positive_num_or("rope_theta", 10000.0);

  if (r.has("hidden_act")) {
    if (!j["hidden_act"].is_string() || j["hidden_act"].get<std::string>() != "silu") {
      r.fail("hidden_act", j["hidden_act"].dump() + " is not supported (only \"silu\")");
    }
  }
  if (r.bool_or("mlp_bias", false)) r.fail("mlp_bias", "true is not supported");
  if (r.has("pretraining_tp") && j["pretraining_tp"] != 1) {
    r.fail("pretraining_tp", "only 1 is supported");
  }
  if (r.has("attention_dropout") && j["attention_dropout"].is_number() &&
      j["attention_dropout"].get<double>() != 0.0) {
    r.fail("attention_dropout", "must be 0 (dropout is not supported)");
  }

  c.tied_embeddings = r.bool_or("tie_word_embeddings", false);
  if (c.arch == Arch::Qwen2) {
    c.qkv_bias = true;
  } else {
    const bool b = r.bool_or("attention_bias", false);
    c.qkv_bias = b;
    c.o_bias = b;
  }
  if (c.arch == Arch::Mistral && r.has("sliding_window")) {
    c.sliding_window = r.positive_int("sliding_window", kMaxPositions);
  }
  if (c.arch == Arch::Qwen2 && r.bool_or("use_sliding_window", false)) {
    r.fail("use_sliding_window", "true is not supported");
  }

  if (r.has("rope_scaling")) {
    const auto& s = j["rope_scaling"];
    if (!s.is_object()) r.fail("rope_scaling", "must be an object or null");
    std::string type;
    if (s.contains("rope_type") && s["rope_type"].is_string()) {
      type = s["rope_type"].get<std::string>();
    } else if (s.contains("type") && s["type"].is_string()) {
      type = s["type"].get<std::string>();
    } else {
      r.fail("rope_scaling", "needs \"rope_type\" (or \"type\")");
    }
    auto num = [&](const char* k, double def) {
      if (!s.contains(k) || s[k].is_null()) return def;
      if (!s[k].is_number() || !(s[k].get<double>() > 0) || !std::isfinite(s[k].get<double>())) {
        r.fail(std::string("rope_scaling.") + k, "must be a positive finite number");
      }
      return s[k].get<double>();
    };
    if (type == "default") {
      c.rope.scaling = RopeScaling::None;
    } else if (type == "linear") {
      c.rope.scaling = RopeScaling::Linear;
      c.rope.factor = num("factor", 0);
      if (c.rope.factor <= 0) r.fail("rope_scaling.factor", "missing");
    } else if (type == "llama3") {
      c.rope.scaling = RopeScaling::Llama3;
      c.rope.factor = num("factor", 0);
      if (c.rope.factor <= 0) r.fail("rope_scaling.factor", "missing");
      c.rope.low_freq_factor = num("low_freq_factor", 1.0);
      c.rope.high_freq_factor = num("high_freq_factor", 4.0);
      const double original = num("original_max_position_embeddings", 8192);
      if (original < 1 || original > static_cast<double>(kMaxPositions)) {
        r.fail("rope_scaling.original_max_position_embeddings",
               "must lie in [1, " + std::to_string(kMaxPositions) + "]");
      }
      c.rope.original_max_position = static_cast<int64_t>(original);
      if (c.rope.high_freq_factor <= c.rope.low_freq_factor) {
        r.fail("rope_scaling.high_freq_factor", "must exceed low_freq_factor");
      }
    } else {
      r.fail("rope_scaling", "type \"" + type + "\" is not supported (none, linear, llama3)");
    }
  }
  c.bos_token_id = token_id_or(j, "bos_token_id");
  c.eos_token_id = token_id_or(j, "eos_token_id");
  return c;
}

ModelConfig load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open (a model folder needs a config.json)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": invalid JSON (" + e.what() + ")");
  }
  return parse_config(j, path);
}

nlohmann::json config_to_json(const ModelConfig& c) {
  nlohmann::json j = c.original.is_object() ? c.original : nlohmann::json::object();
  j["architectures"] = {arch_name(c.arch)};
  j["model_type"] = model_type(c.arch);
  j["hidden_size"] = c.d_model;
  j["num_hidden_layers"] = c.n_layer;
  j["num_attention_heads"] = c.n_head;
  j["num_key_value_heads"] = c.n_kv;
  if (c.original.contains("head_dim") || c.head_dim * c.n_head != c.d_model)
    j["head_dim"] = c.head_dim;
  j["intermediate_size"] = c.d_ff;
  j["vocab_size"] = c.vocab;
  j["max_position_embeddings"] = c.max_position;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope.theta;
  j["tie_word_embeddings"] = c.tied_embeddings;
  j["hidden_act"] = "silu";
  j["torch_dtype"] = "float32";
  if (c.arch == Arch::Llama) j["attention_bias"] = c.qkv_bias;
  if (!j.contains("initializer_range")) j["initializer_range"] = c.initializer_range;
  if (c.bos_token_id >= 0 && !j.contains("bos_token_id")) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_id >= 0 && !j.contains("eos_token_id")) j["eos_token_id"] = c.eos_token_id;
  return j;
}

}  // namespace lomo
