#include "text/gguf_vocab.h"

#include "core/error.h"
#include "text/bpe.h"

namespace lomo::text {

std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufFile& f) {
  const GgufValue* model = f.get("tokenizer.ggml.model");
  if (model == nullptr) return nullptr;
  const std::string kind = model->value.is_string() ? model->value.get<std::string>() : "";
  if (kind != "gpt2") {
    throw Error(
        f.path() + ": tokenizer.ggml.model \"" + kind +
        "\" is not supported yet (gpt2, i.e. byte-level BPE); use the model's tokenizer files");
  }
  auto strings = [&](const char* key) {
    const GgufValue* v = f.get(key);
    if (v == nullptr || v->type != GgufType::ARRAY || v->elem_type != GgufType::STRING) {
      throw Error(f.path() + ": metadata \"" + std::string(key) + "\" must be an array of strings");
    }
    return v;
  };
  BpeParts p;
  const GgufValue* tokens = strings("tokenizer.ggml.tokens");
  for (const auto& t : tokens->value) p.tokens.push_back(t.get<std::string>());
  const GgufValue* merges = strings("tokenizer.ggml.merges");
  for (const auto& m : merges->value) {
    const std::string s = m.get<std::string>();
    const size_t sp = s.find(' ', 1);
    if (sp == std::string::npos) throw Error(f.path() + ": merge \"" + s + "\" is not \"a b\"");
    p.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
  }
  if (const GgufValue* types = f.get("tokenizer.ggml.token_type")) {
    if (types->type != GgufType::ARRAY || types->value.size() != p.tokens.size()) {
      throw Error(f.path() + ": tokenizer.ggml.token_type must list one type per token");
    }
    for (size_t i = 0; i < p.tokens.size(); ++i) {
      const int64_t t = types->value[i].get<int64_t>();
      if (t == 3 || t == 4)
        p.added.push_back({p.tokens[i], static_cast<int32_t>(i), t == 3, false, false});
    }
  }
  const std::string pre = f.get("tokenizer.ggml.pre")
                              ? f.get("tokenizer.ggml.pre")->value.get<std::string>()
                              : "default";
  if (pre == "smollm") {
    p.pre = PreTokenizer::SmolLM;
  } else if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") {
    p.pre = PreTokenizer::Llama3;
    p.ignore_merges = true;
  } else if (pre == "qwen2") {
    p.pre = PreTokenizer::Qwen2;
    p.nfc = true;
  } else if (pre == "gpt2" || pre == "default") {
    p.pre = PreTokenizer::Gpt2;
  } else {
    throw Error(f.path() + ": tokenizer.ggml.pre \"" + pre +
                "\" is not supported (gpt2, default, llama-bpe, qwen2, smollm)");
  }
  auto id = [&](const char* key) -> int32_t {
    const GgufValue* v = f.get(key);
    return v && v->value.is_number_integer() ? v->value.get<int32_t>() : -1;
  };
  p.bos_id = id("tokenizer.ggml.bos_token_id");
  p.eos_id = id("tokenizer.ggml.eos_token_id");
  const GgufValue* add_bos = f.get("tokenizer.ggml.add_bos_token");
  p.add_bos = add_bos && add_bos->value.is_boolean() ? add_bos->value.get<bool>() : false;
  if (p.add_bos && p.bos_id < 0) p.add_bos = false;
  return std::make_unique<BpeTokenizer>(std::move(p));
}

}  // namespace lomo::text
