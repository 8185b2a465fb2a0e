// The chat-template renderer against transformers' apply_chat_template (the reference of
// tests/tools/make_chat_fixtures.py): the templates of SmolLM2, LLaMA-3, Qwen2 and Mistral, string
// for string and id for id; the Jinja subset construct by construct against jinja2 as
// transformers configures it; refusals that name the construct and its position; and bounds on
// untrusted templates.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "test_util.h"
#include "text/chat_template.h"
#include "text/jinja_eval.h"
#include "text/jinja_parse.h"
#include "text/jinja_value.h"
#include "text/tokenizer.h"

namespace lomo {
namespace {

using text::jinja::Value;

const nlohmann::json& reference() {
  static const nlohmann::json j =
      nlohmann::json::parse(std::ifstream(test::fixture_dir("chat") + "/chat_reference.json"));
  return j;
}

std::vector<text::ChatMessage> messages(const nlohmann::json& conv) {
  std::vector<text::ChatMessage> out;
  for (const auto& m : conv) out.push_back({m["role"], m["content"]});
  return out;
}

text::ChatTemplate make_template(const std::string& name) {
  const auto& t = reference()["templates"][name];
  text::ChatTemplate tpl(t["template"].get<std::string>(), name);
  if (t["bos_token"].is_string()) tpl.bos_token = t["bos_token"];
  if (t["eos_token"].is_string()) tpl.eos_token = t["eos_token"];
  return tpl;
}

std::string what_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ChatTemplate, RendersAsTransformersStringAndIds) {
  const auto& ref = reference();
  std::map<std::string, std::unique_ptr<text::Tokenizer>> toks;
  int strings = 0, id_lists = 0, refusals = 0;
  for (const auto& c : ref["cases"]) {
    const std::string name = c["template"];
    const auto tpl = make_template(name);
    const auto msgs = messages(ref["conversations"][c["conversation"].get<size_t>()]);
    const auto gen = c["add_generation_prompt"].get<bool>() ? text::GenerationPrompt::On
                                                            : text::GenerationPrompt::Off;
    const std::string label = name + " conversation " + c["conversation"].dump() +
                              (gen == text::GenerationPrompt::On ? " +generation prompt" : "");
    if (c.contains("error")) {
      const std::string err = what_of([&] { tpl.render(msgs, gen); });
      EXPECT_NE(err.find(c["error"].get<std::string>()), std::string::npos)
          << label << ": expected the template's own refusal, got: " << err;
      ++refusals;
      continue;
    }
    std::string got;
    ASSERT_NO_THROW(got = tpl.render(msgs, gen)) << label;
    EXPECT_EQ(got, c["text"].get<std::string>()) << label;
    ++strings;
    const std::string tk = ref["templates"][name]["tokenizer"];
    auto& tok = toks[tk];
    if (!tok) tok = text::load_tokenizer(test::fixture_dir("tokenizers/" + tk));
    ASSERT_TRUE(tok) << tk;
    EXPECT_EQ(tok->encode(got), c["ids"].get<std::vector<int32_t>>()) << label << " (" << tk << ")";
    ++id_lists;
  }
  // 5 templates × 8 conversations × 2: every one either rendered or refused as the reference.
  EXPECT_EQ(strings + refusals, 80);
  EXPECT_EQ(refusals, 14);
  EXPECT_EQ(id_lists, 66);
}

Value from_json(const nlohmann::json& j) {
  if (j.is_null()) return Value::none();
  if (j.is_boolean()) return Value::boolean(j.get<bool>());
  if (j.is_number_integer()) return Value::integer(j.get<int64_t>());
  if (j.is_number()) return Value::real(j.get<double>());
  if (j.is_string()) return Value::string(j.get<std::string>());
  if (j.is_array()) {
    text::jinja::List l;
    for (const auto& x : j) l.push_back(from_json(x));
    return text::jinja::list_of(std::move(l));
  }
  text::jinja::Dict d;
  for (const auto& [k, v] : j.items()) d.emplace_back(k, from_json(v));
  return text::jinja::dict_of(std::move(d));
}

std::string render_snippet(const std::string& tpl, const nlohmann::json& vars,
                           const text::jinja::Limits& limits = {}) {
  text::jinja::Dict globals;
  for (const auto& [k, v] : vars.items()) globals.emplace_back(k, from_json(v));
  return text::jinja::render(text::jinja::parse(tpl, "snippet"), globals, "snippet", limits);
}

TEST(ChatTemplate, SubsetMatchesJinja2ConstructByConstruct) {
  int checked = 0;
  for (const auto& c : reference()["subset"]) {
    const std::string tpl = c["template"];
    if (tpl.find("{% macro") != std::string::npos) {  // jinja2 has macros; we refuse them
      EXPECT_NE(what_of([&] { render_snippet(tpl, c["vars"]); }).find("`{% macro %}`"),
                std::string::npos);
      continue;
    }
    if (c.contains("error")) {
      EXPECT_NE(what_of([&] { render_snippet(tpl, c["vars"]); }), "")
          << tpl << "\njinja2 raised " << c["error"];
    } else {
      std::string got;
      EXPECT_NO_THROW(got = render_snippet(tpl, c["vars"])) << tpl;
      EXPECT_EQ(got, c["expected"].get<std::string>()) << tpl;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 24);
}

TEST(ChatTemplate, RaiseExceptionCarriesTheTemplatesMessage) {
  const auto tpl = make_template("mistral");
  const std::string err = what_of([&] { tpl.render({{"user", "a"}, {"user", "b"}}); });
  EXPECT_NE(err.find("mistral line 11, column 13"), std::string::npos) << err;
  EXPECT_NE(err.find("conversation roles must alternate"), std::string::npos) << err;
}

TEST(ChatTemplate, RefusesWhatItDoesNotSupportNamingConstructAndPosition) {
  struct Case {
    const char* tpl;
    const char* expect;
  };
  const Case cases[] = {
      {"ok\n  {% macro m() %}{% endmacro %}", "line 2, column 6: the statement `{% macro %}`"},
      {"{% generation %}x{% endgeneration %}",
       "line 1, column 4: the statement `{% generation %}`"},
      {"{% include 'x' %}", "`{% include %}`"},
      {"{% set x %}y{% endset %}", "block form `{% set x %}...{% endset %}`"},
      {"{% for x in y recursive %}{% endfor %}", "recursive for loops"},
      {"{{ x | wordcount }}", "line 1, column 6: the filter `wordcount` is not supported"},
      {"{{ x is sameas y }}", "the test `sameas` is not supported"},
      {"{{ lipsum() }}", "the function `lipsum()` is not supported"},
      {"{{ 'a'.format(1) }}", "the method str.format() is not supported"},
      {"{{ f(*args) }}", "`*args`"},
      {"{% if x %}", "the template ends where `{% elif %}` or `{% else %}`"},
      {"{{ x ", "the tag is never closed with `}}`"},
      {"{{ 'abc }}", "the string literal is never closed"},
      {"{# never closed", "the comment `{#` is never closed"},
      {"{% break %}", "`{% break %}` outside a for loop"},
      {"{{ a ? b }}", "unexpected character '?'"},
      {"{% frobnicate %}", "unknown statement `{% frobnicate %}`"},
      {"{{ 'é' | upper }}", "non-ASCII"},
      {"{{ x.y.z }}", "line 1, column 4: 'x' is undefined"},
      {"{% set ns = 1 %}{% set ns.a = 2 %}", "is not a namespace()"},
  };
  for (const auto& c : cases) {
    const std::string err = what_of([&] { render_snippet(c.tpl, nlohmann::json::object()); });
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.tpl << "\n  got: " << err;
  }
}

TEST(ChatTemplate, UntrustedTemplatesAreBounded) {
  const auto t0 = std::chrono::steady_clock::now();
  auto err_of = [&](const std::string& tpl) {
    return what_of([&] { render_snippet(tpl, nlohmann::json::object()); });
  };
  // Nesting past the parser's bound, in every recursive rule: refused, not a stack overflow.
  EXPECT_NE(err_of("{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}")
                .find("nesting deeper"),
            std::string::npos);
  EXPECT_NE(err_of("{{ " + std::string(100000, '-') + "1 }}").find("nesting deeper"),
            std::string::npos);
  std::string chain = "{{ 1";
  for (int k = 0; k < 20000; ++k) chain += " + 1";
  EXPECT_NE(err_of(chain + " }}").find("more than 1000 parts"), std::string::npos);
  std::string filters = "{{ 'x'";
  for (int k = 0; k < 20000; ++k) filters += "|trim";
  EXPECT_NE(err_of(filters + " }}").find("more than 1000 parts"), std::string::npos);
  std::string ifs;
  for (int k = 0; k < 5000; ++k) ifs += "{% if true %}";
  EXPECT_NE(err_of(ifs).find("nesting deeper"), std::string::npos);
  // Runaway loops and output (under smaller limits than the defaults, to keep the test short).
  const text::jinja::Limits small{200'000, size_t{1} << 20};
  const auto small_err = [&](const std::string& tpl) {
    return what_of([&] { render_snippet(tpl, nlohmann::json::object(), small); });
  };
  EXPECT_NE(small_err("{% for i in range(1000) %}{% for j in range(1000000) %}{% endfor %}"
                      "{% endfor %}")
                .find("more than 200000 evaluation steps"),
            std::string::npos);
  EXPECT_NE(small_err("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}")
                .find("the output grows past 1048576 bytes"),
            std::string::npos);
  EXPECT_NE(err_of("{{ 'x' * 9000000000000000000 }}").find("limit"), std::string::npos);
  EXPECT_NE(err_of("{% set ns = namespace(x=[]) %}{% for i in range(100) %}"
                   "{% set ns.x = [ns.x] %}{% endfor %}")
                .find("nested deeper"),
            std::string::npos);
  EXPECT_NE(err_of("{% set ns = namespace() %}{% set ns.me = ns %}").find("namespace"),
            std::string::npos);
  EXPECT_NE(err_of("{{ 9223372036854775807 + 1 }}").find("overflow"), std::string::npos);
  EXPECT_NE(err_of("{{ (-9223372036854775807 - 1) // -1 }}").find("overflow"), std::string::npos);
  EXPECT_NE(err_of("{{ range(10000000) }}").find("range()"), std::string::npos);
  EXPECT_EQ(err_of("{{ 'abc'[2::9223372036854775807] }}{{ [1, 2][1::-9223372036854775807] }}"), "");
  // Every byte value and truncation of a real template: an error or a string, never a crash.
  const std::string src = reference()["templates"]["mistral"]["template"];
  for (size_t n = 0; n <= src.size(); n += 7) {
    try {
      text::ChatTemplate t(src.substr(0, n), "cut");
      t.render({{"user", "x"}});
    } catch (const Error&) {
    }
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
}

TEST(ChatTemplate, LoadsFromTokenizerConfigAndFile) {
  const std::string dir = testing::TempDir() + "/chat_tpl_model";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tokenizer_config.json")
      << nlohmann::json(
             {{"bos_token", {{"content", "<s>"}}},
              {"eos_token", "</s>"},
              {"chat_template", "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}"}})
             .dump();
  const auto t = text::load_chat_template(dir);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->render({{"user", "hi"}}), "<s>hi</s>");
  // A list of named templates: transformers' "default".
  std::ofstream(dir + "/tokenizer_config.json")
      << nlohmann::json({{"chat_template",
                          {{{"name", "tool_use"}, {"template", "T"}},
                           {{"name", "default"}, {"template", "D"}}}}})
             .dump();
  EXPECT_EQ(text::load_chat_template(dir)->render({}), "D");
  std::ofstream(dir + "/tokenizer_config.json") << "{}";
  EXPECT_FALSE(text::load_chat_template(dir).has_value());
  std::ofstream(dir + "/chat_template.jinja") << "J{{ messages | length }}";
  EXPECT_EQ(text::load_chat_template(dir)->render({{"user", "a"}}), "J1");
  std::filesystem::remove(dir + "/chat_template.jinja");
  std::ofstream(dir + "/t.jinja") << "[{{ eos_token }}]\n";
  EXPECT_EQ(text::chat_template_from_file(dir + "/t.jinja", "<s>", "</s>").render({}), "[</s>]");
  EXPECT_NE(what_of([&] {
              text::chat_template_from_file(dir + "/none.jinja", "", "");
            }).find("--chat-template"),
            std::string::npos);
}

}  // namespace
}  // namespace lomo
