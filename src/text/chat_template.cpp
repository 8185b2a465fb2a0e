#include "text/chat_template.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "core/error.h"
#include "io/gguf.h"
#include "text/jinja_eval.h"
#include "text/jinja_parse.h"
#include "text/jinja_value.h"

namespace lomo::text {

namespace fs = std::filesystem;

ChatTemplate::ChatTemplate(const std::string& source, std::string where)
    : where_(std::move(where)),
      tpl_(std::make_shared<const jinja::Template>(jinja::parse(source, where_))) {}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                 GenerationPrompt gen) const {
  using jinja::Value;
  jinja::List msgs;
  for (const auto& m : messages) {
    msgs.push_back(
        jinja::dict_of({{"role", Value::string(m.role)}, {"content", Value::string(m.content)}}));
  }
  const jinja::Dict globals = {
      {"messages", jinja::list_of(std::move(msgs))},
      {"bos_token", Value::string(bos_token)},
      {"eos_token", Value::string(eos_token)},
      {"add_generation_prompt", Value::boolean(gen == GenerationPrompt::On)},
  };
  return jinja::render(*tpl_, globals, where_);
}

namespace {

nlohmann::json read_json_file(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw Error(p.string() + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(p.string() + ": invalid JSON (" + e.what() + ")");
  }
}

// "bos_token": "<s>" or {"content": "<s>", ...}
std::string token_string(const nlohmann::json& c, const char* key) {
  const auto it = c.find(key);
  if (it == c.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return "";
}

// tokenizer_config.json's chat_template: a string, or [{"name": ..., "template": ...}] of which
// transformers uses "default".
std::optional<std::string> config_template(const nlohmann::json& c, const std::string& where) {
  const auto it = c.find("chat_template");
  if (it == c.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    for (const auto& e : *it) {
      if (e.is_object() && e.contains("name") && e["name"] == "default" && e.contains("template") &&
          e["template"].is_string())
        return e["template"].get<std::string>();
    }
    throw Error(where +
                ": chat_template is a list without a \"default\" entry (give one with "
                "--chat-template FILE)");
  }
  throw Error(where + ": chat_template must be a string");
}

std::string gguf_token(const GgufFile& f, const char* id_key) {
  const GgufValue* id = f.get(id_key);
  const GgufValue* toks = f.get("tokenizer.ggml.tokens");
  if (id == nullptr || toks == nullptr || !id->value.is_number_integer() || !toks->value.is_array())
    return "";
  const int64_t k = id->value.get<int64_t>();
  if (k < 0 || k >= static_cast<int64_t>(toks->value.size()) || !toks->value[k].is_string())
    return "";
  return toks->value[k].get<std::string>();
}

}  // namespace

std::pair<std::string, std::string> model_special_tokens(const std::string& model_path) {
  if (fs::is_regular_file(model_path)) {
    if (!is_gguf_file(model_path)) return {};
    const GgufFile f(model_path);
    return {gguf_token(f, "tokenizer.ggml.bos_token_id"),
            gguf_token(f, "tokenizer.ggml.eos_token_id")};
  }
  const fs::path tc = fs::path(model_path) / "tokenizer_config.json";
  if (!fs::exists(tc)) return {};
  const nlohmann::json c = read_json_file(tc);
  if (!c.is_object()) return {};
  return {token_string(c, "bos_token"), token_string(c, "eos_token")};
}

std::optional<ChatTemplate> load_chat_template(const std::string& model_path) {
  std::optional<std::string> source;
  std::string where;
  if (fs::is_regular_file(model_path)) {
    if (!is_gguf_file(model_path)) return std::nullopt;
    const GgufFile f(model_path);
    const GgufValue* t = f.get("tokenizer.chat_template");
    if (t == nullptr || !t->value.is_string()) return std::nullopt;
    source = t->value.get<std::string>();
    where = model_path + " (tokenizer.chat_template)";
  } else {
    // Newer transformers save the template beside the config, and read it first.
    const fs::path jinja = fs::path(model_path) / "chat_template.jinja";
    const fs::path tc = fs::path(model_path) / "tokenizer_config.json";
    if (fs::exists(jinja)) {
      std::ifstream in(jinja, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      if (!in) throw Error(jinja.string() + ": cannot read the chat template");
      source = ss.str();
      where = jinja.string();
    } else {
      if (!fs::exists(tc)) return std::nullopt;
      const nlohmann::json c = read_json_file(tc);
      if (!c.is_object()) throw Error(tc.string() + ": expected a JSON object");
      where = tc.string() + " (chat_template)";
      source = config_template(c, where);
      if (!source) return std::nullopt;
    }
  }
  ChatTemplate t(*source, where);
  std::tie(t.bos_token, t.eos_token) = model_special_tokens(model_path);
  return t;
}

ChatTemplate chat_template_from_file(const std::string& path, const std::string& bos,
                                     const std::string& eos) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the chat template file (--chat-template)");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  std::string b = bos, e = eos;
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    const auto src = config_template(j, path);
    if (!src) throw Error(path + ": a JSON file without a \"chat_template\" string");
    text = *src;
    if (const std::string s = token_string(j, "bos_token"); !s.empty()) b = s;
    if (const std::string s = token_string(j, "eos_token"); !s.empty()) e = s;
  }
  ChatTemplate t(text, path);
  t.bos_token = b;
  t.eos_token = e;
  return t;
}

}  // namespace lomo::text
