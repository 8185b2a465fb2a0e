#include "data/chat.h"

#include <algorithm>

#include "core/error.h"
#include "text/jinja_lex.h"

namespace lomo::data {

std::vector<text::ChatMessage> parse_messages(const nlohmann::json& j, const std::string& where) {
  const auto it = j.find("messages");
  if (it == j.end() || !it->is_array() || it->empty()) {
    throw Error(where + ": field \"messages\" must be a non-empty list of {\"role\", \"content\"}");
  }
  std::vector<text::ChatMessage> out;
  for (size_t k = 0; k < it->size(); ++k) {
    const auto& m = (*it)[k];
    const std::string at = where + ": messages[" + std::to_string(k) + "]";
    if (!m.is_object()) throw Error(at + " must be an object {\"role\": ..., \"content\": ...}");
    const auto role = m.find("role");
    const auto content = m.find("content");
    if (role == m.end() || !role->is_string()) throw Error(at + ": \"role\" must be a string");
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "user" && r != "assistant") {
      throw Error(at + ": role \"" + r + "\" is not one of \"system\", \"user\", \"assistant\"");
    }
    if (content == m.end() || !content->is_string()) {
      throw Error(at + ": \"content\" must be a string");
    }
    out.push_back({r, content->get<std::string>()});
  }
  return out;
}

namespace {

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t k = 0;
  while (k < n && a[k] == b[k]) ++k;
  return k;
}

// With ids = encode(text): the number of tokens that lie wholly inside text[:cut] (when the
// tokens of the prefix are a prefix of the tokens, exactly those; else the tokens up to the one
// that straddles the cut), and whether a token straddles it.
struct Cut {
  size_t whole = 0;
  bool straddles = false;
};
Cut cut_at(const text::Tokenizer& tok, const std::string& text, size_t cut,
           const std::vector<int32_t>& ids) {
  const auto p = tok.encode(std::string_view(text).substr(0, cut));
  const size_t l = common_prefix(p, ids);
  return {l, l != p.size()};
}

}  // namespace

Sequence chat_sequence(const text::Tokenizer& tok, const text::ChatTemplate& tpl,
                       const std::vector<text::ChatMessage>& messages, ChatLoss loss,
                       const std::string& where) {
  std::string full;
  try {
    full = tpl.render(messages);
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  Sequence s;
  s.ids = tok.encode(full);
  if (loss == ChatLoss::AllTurns) return s;  // empty mask: every token after the first

  s.loss.assign(s.ids.size(), 0);
  bool any = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role != "assistant") continue;
    any = true;
    std::string before, upto;
    try {
      const std::vector<text::ChatMessage> head(messages.begin(), messages.begin() + i);
      before = i ? tpl.render(head, text::GenerationPrompt::On) : "";
      const std::vector<text::ChatMessage> with(messages.begin(), messages.begin() + i + 1);
      upto = tpl.render(with);
    } catch (const Error& e) {
      throw Error(where + ": rendering the conversation up to messages[" + std::to_string(i) +
                  "] to find its tokens: " + e.what() +
                  " (--train-on-all-turns needs only the whole conversation)");
    }
    if (upto.compare(0, before.size(), before) != 0 || full.compare(0, upto.size(), upto) != 0) {
      throw Error(where + ": the chat template (" + tpl.where() +
                  ") renders the start of the conversation differently from the whole, so the "
                  "tokens of messages[" +
                  std::to_string(i) +
                  "] cannot be located; train on every token with --train-on-all-turns");
    }
    const size_t start = before.size();
    const size_t end =
        start + text::jinja::strip_space(std::string_view(upto).substr(start), false, true).size();
    if (end == start) continue;
    const size_t first = cut_at(tok, full, start, s.ids).whole;
    const Cut e = cut_at(tok, full, end, s.ids);
    const size_t last = std::min(s.ids.size(), e.whole + (e.straddles ? 1 : 0));
    for (size_t t = first; t < last; ++t) s.loss[t] = 1;
  }
  if (!any) {
    throw Error(where +
                ": the conversation has no assistant message, so no token carries loss "
                "(train on every token with --train-on-all-turns)");
  }
  return s;
}

}  // namespace lomo::data
