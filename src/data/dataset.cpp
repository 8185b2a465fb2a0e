#include "data/dataset.h"

#include <fstream>

#include "core/error.h"

namespace lomo::data {

const char* format_name(Format f) {
  switch (f) {
    case Format::Ids:
      return "{\"input_ids\"}";
    case Format::Text:
      return "{\"text\"}";
    case Format::PromptCompletion:
      return "{\"prompt\", \"completion\"}";
    case Format::Task:
      return "task";
    case Format::Messages:
      return "{\"messages\"}";
  }
  return "?";
}

namespace {

// Calls fn(json, "file:line") for every non-blank line.
template <class Fn>
void for_each_line(const std::string& path, Fn fn) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open the data file");
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(lineno);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(where + ": invalid JSON (" + e.what() + ")");
    }
    fn(j, where);
  }
}

Format detect(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": expected a JSON object");
  if (j.contains("messages")) return Format::Messages;
  if (j.contains("input_ids")) return Format::Ids;
  if (j.contains("text")) return Format::Text;
  if (j.contains("prompt") || j.contains("completion")) return Format::PromptCompletion;
  throw Error(where +
              ": expected {\"input_ids\": [...]}, {\"text\": ...}, {\"prompt\": ..., "
              "\"completion\": ...} or {\"messages\": [...]} (or give --task for a task's own "
              "fields)");
}

std::string string_field(const nlohmann::json& j, const char* k, const std::string& where) {
  if (!j.contains(k)) throw Error(where + ": field \"" + std::string(k) + "\" is missing");
  if (!j[k].is_string()) throw Error(where + ": field \"" + std::string(k) + "\" must be a string");
  return j[k].get<std::string>();
}

Sequence ids_line(const nlohmann::json& j, const std::string& where) {
  const auto& ids = j["input_ids"];
  if (!ids.is_array()) throw Error(where + ": field \"input_ids\" must be a list of token ids");
  Sequence s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!ids[i].is_number_integer()) {
      throw Error(where + ": input_ids[" + std::to_string(i) + "] = " + ids[i].dump() +
                  " is not an integer");
    }
    const int64_t id = ids[i].get<int64_t>();
    if (id < 0 || id > INT32_MAX) {
      throw Error(where + ": input_ids[" + std::to_string(i) + "] = " + std::to_string(id) +
                  " is not a token id");
    }
    s.ids.push_back(static_cast<int32_t>(id));
  }
  return s;
}

// The chat template for {"messages"} data: --chat-template's file, else the model's own.
text::ChatTemplate chat_template(const DataOptions& opts, const std::string& where) {
  if (!opts.chat_template_file.empty()) {
    auto [bos, eos] = opts.model_path.empty() ? std::pair<std::string, std::string>{}
                                              : text::model_special_tokens(opts.model_path);
    return text::chat_template_from_file(opts.chat_template_file, bos, eos);
  }
  std::optional<text::ChatTemplate> t;
  if (!opts.model_path.empty()) t = text::load_chat_template(opts.model_path);
  if (!t) {
    throw Error(where + ": {\"messages\"} data is laid out by the model's chat template, and " +
                (opts.model_path.empty() ? std::string("no model") : opts.model_path) +
                " has none (no \"chat_template\" in tokenizer_config.json, no "
                "tokenizer.chat_template in a GGUF file); give one with --chat-template FILE");
  }
  return std::move(*t);
}

}  // namespace

Sequence prompt_completion(const text::Tokenizer& tok, const std::string& prompt,
                           const std::string& completion, const std::string& where) {
  if (tok.eos_id < 0) {
    throw Error(where +
                ": prompt/completion data needs an EOS token, and the tokenizer has none "
                "(set eos_token in tokenizer_config.json)");
  }
  Sequence s;
  s.ids = tok.encode_document(prompt);
  s.loss.assign(s.ids.size(), 0);
  for (int32_t id : tok.encode(completion)) {
    s.ids.push_back(id);
    s.loss.push_back(1);
  }
  s.ids.push_back(tok.eos_id);
  s.loss.push_back(1);
  return s;
}

Dataset load_dataset(const std::string& path, const DataOptions& opts) {
  LOMO_ASSERT(opts.config != nullptr, "DataOptions.config");
  const ModelConfig& cfg = *opts.config;
  Dataset ds;
  std::optional<text::ChatTemplate> chat;  // read on the first {"messages"} line
  bool first = true;
  std::string first_where;
  for_each_line(path, [&](const nlohmann::json& j, const std::string& where) {
    const Format f = opts.task ? Format::Task : detect(j, where);
    if (first) {
      ds.format = f;
      first_where = where;
      first = false;
      if (f != Format::Messages && !opts.chat_template_file.empty()) {
        throw Error(where + ": --chat-template applies to {\"messages\"} data, and this file is " +
                    format_name(f));
      }
      if (f != Format::Messages && opts.chat_loss == ChatLoss::AllTurns) {
        throw Error(where + ": --train-on-all-turns applies to {\"messages\"} data, and this "
                    "file is " + format_name(f));
      }
    } else if (f != ds.format) {
      throw Error(where + ": a " + format_name(f) + " line in a file whose first line (" +
                  first_where + ") is " + format_name(ds.format) + "; one file holds one form");
    }
    if (f != Format::Ids && opts.tokenizer == nullptr) {
      throw Error(where +
                  ": text data needs a tokenizer, and the model has none (a folder's "
                  "tokenizer.json or tokenizer.model; a --random-init model never has one): give "
                  "{\"input_ids\"} data");
    }
    std::vector<Sequence> seqs;
    switch (f) {
      case Format::Ids:
        seqs.push_back(ids_line(j, where));
        if (static_cast<int64_t>(seqs.back().ids.size()) > cfg.max_position) {
          throw Error(where + ": " + std::to_string(seqs.back().ids.size()) +
                      " tokens exceed the model's context (max_position_embeddings = " +
                      std::to_string(cfg.max_position) + ")");
        }
        break;
      case Format::Text: {
        Sequence s;
        s.ids = opts.tokenizer->encode_document(string_field(j, "text", where));
        seqs.push_back(std::move(s));
        break;
      }
      case Format::PromptCompletion:
        seqs.push_back(prompt_completion(*opts.tokenizer, string_field(j, "prompt", where),
                                         string_field(j, "completion", where), where));
        break;
      case Format::Task:
        for (const auto& e : parse_task_line(*opts.task, j, where)) {
          if (e.label < 0) {
            throw Error(where + ": field \"label\" is missing; training needs labelled examples");
          }
          seqs.push_back(
              prompt_completion(*opts.tokenizer, e.prompt, e.candidates[e.label], where));
        }
        break;
      case Format::Messages: {
        const auto msgs = parse_messages(j, where);
        if (!chat) chat = chat_template(opts, where);
        seqs.push_back(chat_sequence(*opts.tokenizer, *chat, msgs, opts.chat_loss, where));
        break;
      }
    }
    for (auto& s : seqs) {
      for (size_t i = 0; i < s.ids.size(); ++i) {
        if (s.ids[i] >= cfg.vocab) {
          const std::string what = f == Format::Ids ? "input_ids[" + std::to_string(i) + "] = "
                                                    : "token " + std::to_string(i) + " has id ";
          throw Error(where + ": " + what + std::to_string(s.ids[i]) +
                      " is outside the vocabulary [0, " + std::to_string(cfg.vocab) + ")");
        }
      }
      if (s.ids.size() < 2) {
        throw Error(where + ": a sequence needs at least 2 tokens to predict one (has " +
                    std::to_string(s.ids.size()) + ")");
      }
      if (static_cast<int64_t>(s.ids.size()) > opts.seq_len) {
        s.ids.resize(opts.seq_len);
        if (!s.loss.empty()) s.loss.resize(opts.seq_len);
        ++ds.truncated;
      }
      bool has_loss = s.loss.empty();
      for (size_t t = 1; t < s.loss.size() && !has_loss; ++t) has_loss = s.loss[t] != 0;
      if (!has_loss) {
        ++ds.dropped;
        continue;
      }
      ds.examples.push_back(std::move(s));
    }
  });
  if (ds.examples.empty()) {
    throw Error(path + (ds.dropped
                            ? ": every example lost its loss tokens to truncation (raise --seq-len)"
                            : ": the data file holds no examples"));
  }
  return ds;
}

std::vector<ChoiceExample> load_choice_examples(const std::string& path, Task task) {
  std::vector<ChoiceExample> out;
  for_each_line(path, [&](const nlohmann::json& j, const std::string& where) {
    for (auto& e : parse_task_line(task, j, where)) out.push_back(std::move(e));
  });
  if (out.empty()) throw Error(path + ": the data file holds no examples");
  return out;
}

}  // namespace lomo::data
