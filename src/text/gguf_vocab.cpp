#include "text/gguf_vocab.h"

#include "core/error.h"
#include "text/bpe.h"
#include "text/unicode.h"

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
  // GGUF strings are UTF-8 (the format's rule); the vocabulary is written back as JSON on
  // export, which has no way to hold anything else.
  auto utf8 = [&](const std::string& s, const char* key, size_t i) {
    if (utf8_lossy(s) != s) {
      throw Error(f.path() + ": " + key + "[" + std::to_string(i) + "] is not valid UTF-8");
    }
    return s;
  };
  BpeParts p;
  const GgufValue* tokens = strings("tokenizer.ggml.tokens");
  if (tokens->value.size() > static_cast<size_t>(INT32_MAX)) {
    throw Error(f.path() + ": tokenizer.ggml.tokens lists more than 2^31 tokens");
  }
  for (size_t i = 0; i < tokens->value.size(); ++i) {
    p.tokens.push_back(
        utf8(tokens->value[i].get_ref<const std::string&>(), "tokenizer.ggml.tokens", i));
  }
  const GgufValue* merges = strings("tokenizer.ggml.merges");
  for (size_t i = 0; i < merges->value.size(); ++i) {
    const std::string s =
        utf8(merges->value[i].get_ref<const std::string&>(), "tokenizer.ggml.merges", i);
    const size_t sp = s.find(' ', 1);
    if (sp == std::string::npos) throw Error(f.path() + ": merge \"" + s + "\" is not \"a b\"");
    p.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
  }
  if (const GgufValue* types = f.get("tokenizer.ggml.token_type")) {
    const bool integers = types->elem_type != GgufType::F32 && types->elem_type != GgufType::F64 &&
                          types->elem_type != GgufType::BOOL &&
                          types->elem_type != GgufType::STRING;
    if (types->type != GgufType::ARRAY || !integers || types->value.size() != p.tokens.size()) {
      throw Error(f.path() + ": tokenizer.ggml.token_type must list one integer type per token");
    }
    for (size_t i = 0; i < p.tokens.size(); ++i) {
      const int64_t t = types->value[i].get<int64_t>();
      if (t == 3 || t == 4)
        p.added.push_back({p.tokens[i], static_cast<int32_t>(i), t == 3, false, false});
    }
  }
  const GgufValue* prev = f.get("tokenizer.ggml.pre");
  if (prev != nullptr && !prev->value.is_string()) {
    throw Error(f.path() + ": tokenizer.ggml.pre must be a string");
  }
  const std::string pre = prev ? prev->value.get<std::string>() : "default";
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
    if (v == nullptr || (v->value.is_number_integer() && v->value.get<int64_t>() == -1)) return -1;
    if (!v->value.is_number_integer() || v->value.get<int64_t>() < 0 ||
        v->value.get<uint64_t>() >= p.tokens.size()) {
      throw Error(f.path() + ": " + key + " = " + v->value.dump() + " is not a token id (" +
                  std::to_string(p.tokens.size()) + " tokens)");
    }
    return static_cast<int32_t>(v->value.get<int64_t>());
  };
  p.bos_id = id("tokenizer.ggml.bos_token_id");
  p.eos_id = id("tokenizer.ggml.eos_token_id");
  const GgufValue* add_bos = f.get("tokenizer.ggml.add_bos_token");
  p.add_bos = add_bos && add_bos->value.is_boolean() ? add_bos->value.get<bool>() : false;
  if (p.add_bos && p.bos_id < 0) p.add_bos = false;
  return std::make_unique<BpeTokenizer>(std::move(p));
}

}  // namespace lomo::text
