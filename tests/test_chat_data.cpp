// {"messages"} training data: the ids are apply_chat_template's, the loss mask covers exactly the
// assistant turns' content and end-of-turn token (checked against the reference's masks, made
// from the tokenizer's character offsets in tests/tools/make_chat_fixtures.py, and by decoding),
// and the errors name the flag that fixes them, before any weight is read.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/chat.h"
#include "data/dataset.h"
#include "test_util.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace lomo {
namespace chat_data_test {  // named: a unity build joins test files

namespace fs = std::filesystem;

const nlohmann::json& reference() {
  static const nlohmann::json j =
      nlohmann::json::parse(std::ifstream(test::fixture_dir("chat") + "/chat_reference.json"));
  return j;
}

text::ChatTemplate make_template(const std::string& name) {
  const auto& t = reference()["templates"][name];
  text::ChatTemplate tpl(t["template"].get<std::string>(), name);
  if (t["bos_token"].is_string()) tpl.bos_token = t["bos_token"];
  if (t["eos_token"].is_string()) tpl.eos_token = t["eos_token"];
  return tpl;
}

std::unique_ptr<text::Tokenizer> tokenizer(const std::string& name) {
  return text::load_tokenizer(test::fixture_dir("tokenizers/" + name));
}

std::vector<text::ChatMessage> conversation(size_t k) {
  std::vector<text::ChatMessage> out;
  for (const auto& m : reference()["conversations"][k]) out.push_back({m["role"], m["content"]});
  return out;
}

std::string what_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ChatData, AssistantMaskEqualsTheReferenceOffsets) {
  int masks = 0;
  for (const auto& c : reference()["cases"]) {
    if (!c.contains("assistant_mask")) continue;
    const std::string name = c["template"];
    const auto tok = tokenizer(reference()["templates"][name]["tokenizer"]);
    const auto s = data::chat_sequence(*tok, make_template(name),
                                       conversation(c["conversation"].get<size_t>()),
                                       data::ChatLoss::AssistantOnly, "test");
    EXPECT_EQ(s.ids, c["ids"].get<std::vector<int32_t>>()) << name << " " << c["conversation"];
    std::vector<uint8_t> want;
    for (int v : c["assistant_mask"]) want.push_back(static_cast<uint8_t>(v));
    EXPECT_EQ(s.loss, want) << name << " conversation " << c["conversation"];
    ++masks;
  }
  EXPECT_EQ(masks, 15);  // 3 byte-level BPE families × 5 conversations with assistant turns
}

// Decoding the loss-bearing tokens gives back the assistant contents with their end-of-turn
// tokens and nothing else.
TEST(ChatData, LossCoversAssistantContentAndEndOfTurnOnly) {
  struct Case {
    const char* tpl;
    const char* tok;
    size_t conv;
    const char* expect;
  };
  const Case cases[] = {
      {"smollm2", "smollm", 0, "4<|im_end|>"},
      {"qwen2", "qwen2", 0, "4<|im_end|>"},
      {"llama3", "llama3", 0, "4<|eot_id|>"},
      {"smollm2", "smollm", 1,
       "Hello! How can I help?<|im_end|>Why did the chicken cross the road? To get to the "
       "other side.<|im_end|>"},
      {"llama3", "llama3", 2, "Bonjour<|eot_id|>Merci beaucoup !<|eot_id|>"},
      // LLaMA-3's template trims the content; ChatML keeps it, trailing newlines included.
      {"llama3", "llama3", 3, "Olá!\nSecond line with \"quotes\" and 'apostrophes'.<|eot_id|>"},
      {"qwen2", "qwen2", 3,
       "\u3000Olá!\nSecond line with \"quotes\" and 'apostrophes'.\n\n<|im_end|>"},
  };
  for (const auto& c : cases) {
    const auto tok = tokenizer(c.tok);
    const auto s = data::chat_sequence(*tok, make_template(c.tpl), conversation(c.conv),
                                       data::ChatLoss::AssistantOnly, "test");
    std::string got;
    std::vector<int32_t> run;
    for (size_t t = 0; t <= s.ids.size(); ++t) {
      if (t < s.ids.size() && s.loss[t]) {
        run.push_back(s.ids[t]);
      } else if (!run.empty()) {
        got += tok->decode(run);
        run.clear();
      }
    }
    EXPECT_EQ(got, c.expect) << c.tpl << " conversation " << c.conv;
    // And the first loss token is preceded by the assistant header, never part of it.
    const auto all = data::chat_sequence(*tok, make_template(c.tpl), conversation(c.conv),
                                         data::ChatLoss::AllTurns, "test");
    EXPECT_EQ(all.ids, s.ids);
    EXPECT_TRUE(all.loss.empty());
  }
}

// SentencePiece (Mistral): " [/INST] 4</s>" ends in the pieces "▁4" and </s>, and those two
// carry the loss; with a system message and two turns, each turn's answer and </s>.
TEST(ChatData, MistralLossIsTheAnswerAndEos) {
  const auto tok = tokenizer("sp");
  const auto s = data::chat_sequence(*tok, make_template("mistral"), conversation(0),
                                     data::ChatLoss::AssistantOnly, "test");
  const size_t n = s.ids.size();
  ASSERT_GE(n, 3u);
  std::vector<uint8_t> want(n, 0);
  want[n - 2] = want[n - 1] = 1;
  EXPECT_EQ(s.loss, want);
  EXPECT_EQ(s.ids[n - 2], tok->token_id("\u2581"
                                        "4"));
  EXPECT_EQ(s.ids[n - 1], tok->eos_id);
  const auto two = data::chat_sequence(*tok, make_template("mistral"), conversation(2),
                                       data::ChatLoss::AssistantOnly, "test");
  std::vector<int32_t> loss_ids;
  for (size_t t = 0; t < two.ids.size(); ++t)
    if (two.loss[t]) loss_ids.push_back(two.ids[t]);
  EXPECT_EQ(tok->decode(loss_ids), "Bonjour Merci beaucoup !");  // decode drops </s>
  EXPECT_EQ(std::count(loss_ids.begin(), loss_ids.end(), tok->eos_id), 2);
}

TEST(ChatData, ConversationErrorsNameTheMessageAndTheFix) {
  const auto tok = tokenizer("smollm");
  const auto tpl = make_template("smollm2");
  EXPECT_NE(what_of([&] {
              data::chat_sequence(*tok, tpl, {{"system", "s"}, {"user", "u"}},
                                  data::ChatLoss::AssistantOnly, "f.jsonl:3");
            }).find("f.jsonl:3: the conversation has no assistant message"),
            std::string::npos);
  EXPECT_NE(what_of([&] {
              data::chat_sequence(*tok, make_template("mistral"), {{"user", "a"}, {"user", "b"}},
                                  data::ChatLoss::AllTurns, "f.jsonl:4");
            }).find("roles must alternate"),
            std::string::npos);
  // A template that lays out a shorter conversation differently (here: a closing marker only
  // after the last message) cannot locate the turns, and says how to train anyway.
  text::ChatTemplate closing(
      "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{{ 'END' }}", "closing");
  EXPECT_NE(what_of([&] {
              data::chat_sequence(*tok, closing, {{"user", "u"}, {"assistant", "a"}},
                                  data::ChatLoss::AssistantOnly, "f.jsonl:5");
            }).find("--train-on-all-turns"),
            std::string::npos);
  const auto bad = [&](const char* line) {
    return what_of([&] { data::parse_messages(nlohmann::json::parse(line), "f.jsonl:7"); });
  };
  EXPECT_NE(bad(R"({"messages": []})").find("non-empty list"), std::string::npos);
  EXPECT_NE(
      bad(R"({"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]})")
          .find("messages[1]: role \"bot\""),
      std::string::npos);
  EXPECT_NE(bad(R"({"messages": [{"role": "user", "content": 5}]})")
                .find("messages[0]: \"content\" must be a string"),
            std::string::npos);
}

struct ChatModelDir {
  ChatModelDir(const std::string& name, const nlohmann::json& config) {
    dir = fs::temp_directory_path() / ("lomo_chat_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy_file(test::fixture_dir("tokenizers/smollm/tokenizer.json"), dir / "tokenizer.json");
    std::ofstream(dir / "tokenizer_config.json") << config.dump();
  }
  ~ChatModelDir() { fs::remove_all(dir); }
  std::string file(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
  fs::path dir;
};

TEST(ChatData, MessagesFilesLoadWithTheModelsTemplateOrTheFlags) {
  const std::string tpl = reference()["templates"]["smollm2"]["template"];
  const ChatModelDir with("with", {{"eos_token", "<|im_end|>"}, {"chat_template", tpl}});
  const ChatModelDir without("without", {{"eos_token", "<|im_end|>"}});
  const auto tok = text::load_tokenizer(with.dir.string());
  ModelConfig cfg;
  cfg.vocab = tok->vocab_size();
  const std::string data = with.file(
      "chat.jsonl",
      R"({"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]})"
      "\n");
  data::DataOptions o{512, &cfg, tok.get(), std::nullopt};
  o.model_path = with.dir.string();
  const auto ds = data::load_dataset(data, o);
  EXPECT_EQ(ds.format, data::Format::Messages);
  ASSERT_EQ(ds.examples.size(), 1u);
  const auto expect = data::chat_sequence(*tok, make_template("smollm2"),
                                          {{"user", "What is 2+2?"}, {"assistant", "4"}},
                                          data::ChatLoss::AssistantOnly, "x");
  EXPECT_EQ(ds.examples[0].ids, expect.ids);
  EXPECT_EQ(ds.examples[0].loss, expect.loss);

  // No template in the model: the error names the model and the flag.
  o.model_path = without.dir.string();
  const std::string err = what_of([&] { data::load_dataset(data, o); });
  EXPECT_NE(err.find(data + ":1: {\"messages\"} data is laid out by the model's chat template"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find(without.dir.string() + " has none"), std::string::npos) << err;
  EXPECT_NE(err.find("--chat-template FILE"), std::string::npos) << err;
  // --chat-template supplies one (bos/eos still the model's); --train-on-all-turns drops the mask.
  o.chat_template_file = without.file("t.jinja", tpl);
  o.chat_loss = data::ChatLoss::AllTurns;
  const auto all = data::load_dataset(data, o);
  EXPECT_EQ(all.examples[0].ids, expect.ids);
  EXPECT_TRUE(all.examples[0].loss.empty());
  // The flags are refused on other data.
  const std::string text = with.file("text.jsonl", R"({"text": "hello"})"
                                                   "\n");
  EXPECT_NE(what_of([&] { data::load_dataset(text, o); }).find("--chat-template applies to"),
            std::string::npos);
  o.chat_template_file.clear();
  EXPECT_NE(what_of([&] { data::load_dataset(text, o); }).find("--train-on-all-turns applies to"),
            std::string::npos);
}

// Through the command line: the missing template is reported before any weight is read (the
// model folder has no weights at all, so reaching them would fail differently).
TEST(ChatData, TrainRefusesAModelWithoutTemplateBeforeReadingWeights) {
  const ChatModelDir m("train", {{"eos_token", "<|im_end|>"}});
  fs::copy_file(test::fixture_dir("eval_model/config.json"), m.dir / "config.json");
  const auto tok = text::load_tokenizer(m.dir.string());
  const std::string data = m.file(
      "chat.jsonl",
      R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})"
      "\n");
  const std::string cmd = std::string(LOMO_BINARY) + " train --model " + m.dir.string() +
                          " --data " + data + " --out " + (m.dir / "out").string() +
                          " --steps 1 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  EXPECT_NE(WEXITSTATUS(st), 0) << out;
  EXPECT_NE(out.find("has none"), std::string::npos) << out;
  EXPECT_NE(out.find("--chat-template FILE"), std::string::npos) << out;
  EXPECT_EQ(out.find("safetensors"), std::string::npos) << out;
}

}  // namespace chat_data_test
}  // namespace lomo
