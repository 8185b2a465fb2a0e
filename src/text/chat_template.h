// A model's chat template: the Jinja program in tokenizer_config.json's "chat_template" (or GGUF
// `tokenizer.chat_template`) that lays a conversation out as the model saw it in training. It is
// rendered with our own Jinja subset (text/jinja_parse.h, text/jinja_eval.h; no C++ Jinja is
// packaged here) to the same string as transformers' apply_chat_template(tokenize=False), whose
// variables it receives: messages, bos_token, eos_token, add_generation_prompt.
// The ids of a conversation are then tokenizer.encode(render(...)) with no BOS added, as
// apply_chat_template(tokenize=True) does (add_special_tokens=False): the template writes
// bos_token itself where the model wants one.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lomo::text {

namespace jinja {
struct Template;
}

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (others are passed on to the template)
  std::string content;
};

enum class GenerationPrompt { Off, On };

class ChatTemplate {
 public:
  // Parses `source` once; throws lomo::Error naming `where` (its file), the line and column, and
  // the construct when the template is malformed or uses Jinja outside the supported subset.
  ChatTemplate(const std::string& source, std::string where);

  // Throws lomo::Error naming `where` when the template fails (an undefined value used, a
  // raise_exception() such as "roles must alternate", a limit on untrusted input).
  std::string render(const std::vector<ChatMessage>& messages,
                     GenerationPrompt gen = GenerationPrompt::Off) const;

  const std::string& where() const { return where_; }

  std::string bos_token;  // the strings the template sees as bos_token / eos_token
  std::string eos_token;

 private:
  std::string where_;
  std::shared_ptr<const jinja::Template> tpl_;
};

// The chat template shipped with a model (GGUF metadata `tokenizer.chat_template`; in a folder,
// chat_template.jinja, else the "chat_template" of tokenizer_config.json, a string or the entry
// named "default" of a list), with bos_token / eos_token from the GGUF metadata or
// tokenizer_config.json; nullopt when the model has none.
std::optional<ChatTemplate> load_chat_template(const std::string& model_path);

// A template from a file (--chat-template FILE): the file's text, or, when the file is a JSON
// object with a "chat_template" string (a tokenizer_config.json), that string. bos/eos come from
// the JSON when it has them, else from `fallback` (the model's), else stay empty.
ChatTemplate chat_template_from_file(const std::string& path, const std::string& bos,
                                     const std::string& eos);

// The bos_token / eos_token strings of a model (as load_chat_template reads them), for a
// template supplied from a file; empty when the model names none.
std::pair<std::string, std::string> model_special_tokens(const std::string& model_path);

}  // namespace lomo::text
