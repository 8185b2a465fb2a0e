#include "model/export.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/file.h"
#include "io/gguf.h"
#include "model/gguf_model.h"
#include "text/bpe.h"

namespace lomo {

namespace fs = std::filesystem;

GgmlType parse_gguf_out_type(const std::string& s) {
  if (s == "f32") return GgmlType::F32;
  if (s == "f16") return GgmlType::F16;
  if (s == "bf16") return GgmlType::BF16;
  if (s == "q8_0") return GgmlType::Q8_0;
  throw Error("--type: \"" + s + "\" is not one of f32, f16, bf16, q8_0");
}

namespace {

// A model folder's chat template as its files hold it (chat_template.jinja, else the string
// "chat_template" of tokenizer_config.json); "" when it has none.
std::string folder_chat_template(const fs::path& dir) {
  if (std::ifstream in(dir / "chat_template.jinja"); in) {
    return {std::istreambuf_iterator<char>(in), {}};
  }
  std::ifstream in(dir / "tokenizer_config.json");
  if (!in) return "";
  const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string())
    return j["chat_template"].get<std::string>();
  return "";
}

GgufValue u32(uint64_t v) {
  return {GgufType::U32, GgufType::U32, v};
}
GgufValue f32(double v) {
  return {GgufType::F32, GgufType::F32, v};
}
GgufValue str(const std::string& v) {
  return {GgufType::STRING, GgufType::STRING, v};
}

uint32_t file_type(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return 0;
    case GgmlType::F16:
      return 1;
    case GgmlType::Q8_0:
      return 7;
    case GgmlType::BF16:
      return 32;
    default:
      return 0;
  }
}

const char* pre_name(text::PreTokenizer p) {
  switch (p) {
    case text::PreTokenizer::Gpt2:
      return "gpt2";
    case text::PreTokenizer::Llama3:
      return "llama-bpe";
    case text::PreTokenizer::Qwen2:
      return "qwen2";
    case text::PreTokenizer::SmolLM:
      return "smollm";
  }
  return "gpt2";
}

// tokenizer.ggml.* for a byte-level BPE tokenizer.
void bpe_metadata(const text::BpeParts& p, std::map<std::string, GgufValue>& kv) {
  GgufValue tokens{GgufType::ARRAY, GgufType::STRING, nlohmann::json::array()};
  GgufValue types{GgufType::ARRAY, GgufType::I32, nlohmann::json::array()};
  std::vector<int> type(p.tokens.size(), 1);
  std::vector<std::string> names = p.tokens;
  for (const auto& a : p.added) {
    if (static_cast<size_t>(a.id) >= names.size()) {
      names.resize(a.id + 1);
      type.resize(a.id + 1, 1);
    }
    names[a.id] = a.content;
    type[a.id] = a.special ? 3 : 4;
  }
  for (size_t i = 0; i < names.size(); ++i) {
    tokens.value.push_back(names[i]);
    types.value.push_back(type[i]);
  }
  GgufValue merges{GgufType::ARRAY, GgufType::STRING, nlohmann::json::array()};
  for (const auto& [a, b] : p.merges) merges.value.push_back(a + " " + b);
  kv["tokenizer.ggml.model"] = str("gpt2");
  kv["tokenizer.ggml.pre"] = str(pre_name(p.pre));
  kv["tokenizer.ggml.tokens"] = tokens;
  kv["tokenizer.ggml.token_type"] = types;
  kv["tokenizer.ggml.merges"] = merges;
  if (p.bos_id >= 0) kv["tokenizer.ggml.bos_token_id"] = u32(static_cast<uint64_t>(p.bos_id));
  if (p.eos_id >= 0) kv["tokenizer.ggml.eos_token_id"] = u32(static_cast<uint64_t>(p.eos_id));
  kv["tokenizer.ggml.add_bos_token"] = {GgufType::BOOL, GgufType::BOOL, p.add_bos};
}

}  // namespace

void check_gguf_exportable(const ModelConfig& config) {
  if (config.rope.scaling == RopeScaling::Llama3) {
    throw Error("GGUF export of llama3 RoPE scaling (rope_freqs) is not supported yet; use "
                "--out-format hf (a Hugging Face folder; llama.cpp's converter reads it)");
  }
}

void export_gguf(const std::string& path, const Model& model, const text::Tokenizer* tok,
                 const std::string& source, GgmlType type, const ProgressFn& progress) {
  const ModelConfig& c = model.config;
  check_gguf_exportable(c);
  std::map<std::string, GgufValue> kv;
  if (fs::is_regular_file(source) && is_gguf_file(source)) {
    const GgufFile src(source);
    for (const auto& [k, v] : src.metadata()) {
      if ((k.rfind("general.", 0) == 0 || k.rfind("tokenizer.", 0) == 0) &&
          k != "general.file_type" && k != "general.alignment" &&
          k != "general.quantization_version") {
        kv[k] = v;
      }
    }
  } else {
    kv["general.name"] = str(fs::path(source).filename().string());
    if (const auto* bpe = dynamic_cast<const text::BpeTokenizer*>(tok)) {
      bpe_metadata(bpe->parts(), kv);
      // The special tokens as the tokenizer resolved them (tokenizer_config.json,
      // generation_config.json, config.json), which tokenizer.json alone does not name.
      if (tok->bos_id >= 0) kv["tokenizer.ggml.bos_token_id"] = u32(tok->bos_id);
      if (tok->eos_id >= 0) kv["tokenizer.ggml.eos_token_id"] = u32(tok->eos_id);
      kv["tokenizer.ggml.add_bos_token"] = {GgufType::BOOL, GgufType::BOOL, tok->add_bos};
    }
    if (fs::is_directory(source)) {
      if (std::string t = folder_chat_template(source); !t.empty())
        kv["tokenizer.chat_template"] = str(t);
    }
  }
  const std::string arch = c.arch == Arch::Qwen2 ? "qwen2" : "llama";
  const std::string a = arch + ".";
  kv["general.architecture"] = str(arch);
  kv["general.file_type"] = u32(file_type(type));
  kv[a + "block_count"] = u32(c.n_layer);
  kv[a + "context_length"] = u32(c.max_position);
  kv[a + "embedding_length"] = u32(c.d_model);
  kv[a + "feed_forward_length"] = u32(c.d_ff);
  kv[a + "attention.head_count"] = u32(c.n_head);
  kv[a + "attention.head_count_kv"] = u32(c.n_kv);
  kv[a + "attention.layer_norm_rms_epsilon"] = f32(c.rms_norm_eps);
  kv[a + "rope.freq_base"] = f32(c.rope.theta);
  kv[a + "rope.dimension_count"] = u32(c.head_dim);
  kv[a + "vocab_size"] = u32(c.vocab);
  if (c.head_dim * c.n_head != c.d_model) {
    kv[a + "attention.key_length"] = u32(c.head_dim);
    kv[a + "attention.value_length"] = u32(c.head_dim);
  }
  if (c.rope.scaling == RopeScaling::Linear) {
    kv[a + "rope.scaling.type"] = str("linear");
    kv[a + "rope.scaling.factor"] = f32(c.rope.factor);
  }

  std::vector<GgufTensorOut> out;
  const int64_t n = model.params.total_numel();  // progress counts parameters, not tensors
  int64_t filled = 0;  // parameters handed to the writer so far
  for (const auto& p : model.params.all()) {
    const bool q = p.name.find("q_proj") != std::string::npos,
               k = p.name.find("k_proj") != std::string::npos;
    const bool permute = gguf_permutes_qk(c) && (q || k);
    const int64_t heads = q ? c.n_head : c.n_kv;
    GgufTensorOut t{
        gguf_tensor_name(p.name), std::vector<uint64_t>(p.shape.rbegin(), p.shape.rend()),
        p.shape.size() == 2 ? type : GgmlType::F32,
        [&p, permute, heads, &progress, &filled, n](float* dst) {
          if (progress) progress(filled, n);
          filled += p.numel();
          p.to_f32(dst);
          // llama.cpp's row order for q and k
          if (permute) {
            gguf_permute_rows(dst, p.shape[0], p.shape.size() == 2 ? p.shape[1] : 1, heads);
          }
        }};
    if (t.type == GgmlType::Q8_0 && t.ne[0] % 32 != 0)
      t.type = GgmlType::F16;  // rows not in whole blocks
    out.push_back(std::move(t));
  }
  write_gguf(path, kv, out);
  if (progress) progress(n, n);
}

void export_hf(const std::string& dir, const Model& model, const text::Tokenizer* tok,
               const std::string& source, const ProgressFn& progress) {
  save_model(dir, model.config, model.params, progress);
  if (fs::is_directory(source)) {
    copy_tokenizer_files(source, dir);
    return;
  }
  const auto* bpe = dynamic_cast<const text::BpeTokenizer*>(tok);
  if (bpe == nullptr) return;
  const auto& p = bpe->parts();
  write_file_atomic((fs::path(dir) / "tokenizer.json").string(),
                    text::to_tokenizer_json(p).dump(1) + "\n");
  nlohmann::json tc = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                       {"add_bos_token", p.add_bos},
                       {"model_max_length", model.config.max_position},
                       {"clean_up_tokenization_spaces", false}};
  if (p.bos_id >= 0) tc["bos_token"] = p.tokens.at(p.bos_id);
  if (p.eos_id >= 0) tc["eos_token"] = p.tokens.at(p.eos_id);
  if (fs::is_regular_file(source) && is_gguf_file(source)) {
    const GgufFile src(source);
    if (const GgufValue* t = src.get("tokenizer.chat_template"); t && t->value.is_string()) {
      tc["chat_template"] = t->value;
    }
  }
  write_file_atomic((fs::path(dir) / "tokenizer_config.json").string(), tc.dump(2) + "\n");
  nlohmann::json gc = {{"_from_model_config", true}};
  if (p.bos_id >= 0) gc["bos_token_id"] = p.bos_id;
  if (p.eos_id >= 0) gc["eos_token_id"] = p.eos_id;
  write_file_atomic((fs::path(dir) / "generation_config.json").string(), gc.dump(2) + "\n");
}

}  // namespace lomo
