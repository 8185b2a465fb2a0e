// Fuzz target: chat templates (text/jinja_*.h, text/chat_template.h, data/chat.h). The input is
// a template's source, as a model file or --chat-template would supply it. It is parsed, rendered
// for a fixed conversation with and without the generation prompt (under tighter limits than the
// defaults, so that one input stays well inside libFuzzer's timeout), and, when it renders, the
// conversation is turned into training data with the tokenizer of tests/fixtures/eval_model,
// which locates the assistant turns by rendering the conversation's prefixes.
#include <memory>

#include "core/error.h"
#include "data/chat.h"
#include "fuzz_util.h"
#include "text/chat_template.h"
#include "text/jinja_eval.h"
#include "text/jinja_parse.h"
#include "text/jinja_value.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lomo;
  static const std::unique_ptr<text::Tokenizer> tok =
      text::load_tokenizer(LOMO_SOURCE_DIR "/tests/fixtures/eval_model");
  const std::string source(reinterpret_cast<const char*>(data), size);
  const std::vector<text::ChatMessage> conv = {
      {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "2+2?"}};
  try {
    const auto tpl = text::jinja::parse(source, "fuzz");
    using text::jinja::Value;
    for (const bool gen : {false, true}) {
      text::jinja::List msgs;
      for (const auto& m : conv) {
        msgs.push_back(text::jinja::dict_of(
            {{"role", Value::string(m.role)}, {"content", Value::string(m.content)}}));
      }
      const text::jinja::Dict globals = {{"messages", text::jinja::list_of(std::move(msgs))},
                                         {"bos_token", Value::string("<s>")},
                                         {"eos_token", Value::string("</s>")},
                                         {"add_generation_prompt", Value::boolean(gen)}};
      (void)text::jinja::render(tpl, globals, "fuzz", {200'000, size_t{1} << 20});
    }
    // Small outputs only: the mask renders and tokenizes every prefix.
    if (size < 512) {
      text::ChatTemplate t(source, "fuzz");
      const auto s = data::chat_sequence(*tok, t, {conv.begin(), conv.begin() + 3},
                                         data::ChatLoss::AssistantOnly, "fuzz");
      if (s.loss.size() != s.ids.size()) std::abort();
    }
  } catch (const Error&) {
  }
  return 0;
}
