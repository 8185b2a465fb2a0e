#include "text/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/gguf.h"
#include "text/bpe.h"
#include "text/gguf_vocab.h"
#include "text/sentencepiece.h"

namespace lomo::text {

namespace fs = std::filesystem;

std::vector<int32_t> Tokenizer::encode_document(std::string_view text) const {
  std::vector<int32_t> ids;
  if (add_bos && bos_id >= 0) ids.push_back(bos_id);
  const auto body = encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

namespace {

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(p.string() + ": invalid JSON (" + e.what() + ")");
  }
}

// "bos_token": "<s>" or {"content": "<s>", ...}
std::string token_string(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}

int32_t first_id(const nlohmann::json& v) {
  if (v.is_number_integer()) return v.get<int32_t>();
  if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int32_t>();
  return -1;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir) {
  if (fs::is_regular_file(model_dir)) {
    if (!is_gguf_file(model_dir)) throw Error(model_dir + ": not a GGUF file or model folder");
    return tokenizer_from_gguf(GgufFile(model_dir));
  }
  const fs::path dir(model_dir);
  const fs::path tj = dir / "tokenizer.json", tm = dir / "tokenizer.model";
  std::unique_ptr<Tokenizer> tok;
  if (fs::exists(tj)) {
    const nlohmann::json j = read_json(tj);
    // Compared, not converted: a "type" that is not a string is simply not "Metaspace" (value()
    // threw a json type error on one; found by fuzz/tokenizer_json_fuzz.cpp).
    const auto pt = j.find("pre_tokenizer");
    const bool metaspace =
        pt != j.end() && pt->is_object() && pt->contains("type") && pt->at("type") == "Metaspace";
    if (metaspace && fs::exists(tm)) {
      tok = std::make_unique<SentencePieceTokenizer>(tm.string());
    } else {
      tok = std::make_unique<BpeTokenizer>(j, tj.string());
    }
  } else if (fs::exists(tm)) {
    tok = std::make_unique<SentencePieceTokenizer>(tm.string());
  } else {
    return nullptr;
  }

  // Special tokens: tokenizer_config.json first, then generation_config.json and config.json.
  const fs::path tc = dir / "tokenizer_config.json";
  if (fs::exists(tc)) {
    const nlohmann::json c = read_json(tc);
    if (c.contains("add_bos_token") && c["add_bos_token"].is_boolean())
      tok->add_bos = c["add_bos_token"].get<bool>();
    for (const auto& [key, slot] : {std::pair<const char*, int32_t*>{"bos_token", &tok->bos_id},
                                    std::pair<const char*, int32_t*>{"eos_token", &tok->eos_id}}) {
      if (!c.contains(key)) continue;
      const std::string s = token_string(c[key]);
      if (s.empty()) continue;
      const int32_t id = tok->token_id(s);
      if (id < 0) throw Error(tc.string() + ": " + key + " \"" + s + "\" is not in the vocabulary");
      *slot = id;
    }
  }
  for (const char* f : {"generation_config.json", "config.json"}) {
    if (!fs::exists(dir / f)) continue;
    const nlohmann::json c = read_json(dir / f);
    if (tok->eos_id < 0 && c.contains("eos_token_id")) tok->eos_id = first_id(c["eos_token_id"]);
    if (tok->bos_id < 0 && c.contains("bos_token_id")) tok->bos_id = first_id(c["bos_token_id"]);
  }
  if (tok->add_bos && tok->bos_id < 0) tok->add_bos = false;
  return tok;
}

}  // namespace lomo::text
