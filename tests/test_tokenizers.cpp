// Tokenizer parity with Hugging Face `tokenizers` and the `sentencepiece` package on a 2,093-line
// corpus (prose, code, numbers, whitespace runs, emoji, CJK, accented Latin, Arabic, special
// tokens in text; tests/tools/make_tokenizer_fixtures.py): ids must be equal on every line, and
// decode(encode(x)) == x wherever the reference itself round-trips.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

namespace lomo {
namespace {

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::string show(const std::vector<int32_t>& v) {
  return nlohmann::json(v).dump();
}

class TokenizerParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerParity, IdsAndRoundTripsMatchTheReference) {
  const std::string dir = test::fixture_dir("tokenizers/" + GetParam());
  const auto tok = text::load_tokenizer(dir);
  ASSERT_NE(tok, nullptr);
  const auto corpus = read_jsonl(test::fixture_dir("tokenizers") + "/corpus.jsonl");
  const auto ref = read_jsonl(dir + "/reference.jsonl");
  ASSERT_EQ(corpus.size(), ref.size());
  ASSERT_GE(corpus.size(), 2000u);
  size_t equal = 0, roundtrips = 0, ref_roundtrips = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string line = corpus[i]["text"].get<std::string>();
    const auto want = ref[i]["ids"].get<std::vector<int32_t>>();
    const auto got = tok->encode(line);
    if (got == want) {
      ++equal;
    } else if (equal + 5 > i) {  // report the first few mismatches in full
      ADD_FAILURE() << GetParam() << " line " << i + 1 << ": " << nlohmann::json(line).dump()
                    << "\n  ours:      " << show(got) << "\n  reference: " << show(want);
    }
    if (ref[i]["roundtrip"].get<bool>()) {
      ++ref_roundtrips;
      const std::string back = tok->decode(got);
      if (back == line) {
        ++roundtrips;
      } else {
        ADD_FAILURE() << GetParam() << " line " << i + 1
                      << " does not round-trip: " << nlohmann::json(line).dump() << " -> "
                      << nlohmann::json(back).dump();
      }
    }
  }
  std::printf("  %s (%s, vocab %lld): %zu/%zu lines equal, %zu/%zu round trips\n",
              GetParam().c_str(), tok->kind().c_str(), static_cast<long long>(tok->vocab_size()),
              equal, corpus.size(), roundtrips, ref_roundtrips);
  EXPECT_EQ(equal, corpus.size());
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, TokenizerParity,
                         ::testing::Values("smollm", "llama3", "qwen2", "gpt2", "sp"),
                         [](const auto& info) { return info.param; });

TEST(Tokenizer, Llama3TemplateAddsBos) {
  const std::string dir = test::fixture_dir("tokenizers/llama3");
  const auto tok = text::load_tokenizer(dir);
  std::ifstream in(dir + "/meta.json");
  const auto meta = nlohmann::json::parse(in);
  EXPECT_TRUE(tok->add_bos);
  EXPECT_EQ(tok->encode_document("Hello world"),
            meta["hello_world_with_specials"].get<std::vector<int32_t>>());
}

TEST(Tokenizer, SmolLmAddsNoBos) {
  const auto tok = text::load_tokenizer(test::fixture_dir("tokenizers/smollm"));
  EXPECT_FALSE(tok->add_bos);
  const auto meta =
      nlohmann::json::parse(std::ifstream(test::fixture_dir("tokenizers/smollm") + "/meta.json"));
  EXPECT_EQ(tok->encode_document("Hello world"),
            meta["hello_world_with_specials"].get<std::vector<int32_t>>());
}

TEST(Unicode, LossyDecodingReplacesMaximalSubparts) {
  // As Rust's String::from_utf8_lossy: a truncated 3-byte sequence is one U+FFFD; a lone
  // continuation byte is one; a valid sequence after them survives.
  EXPECT_EQ(text::utf8_lossy("a\xE2\x82"
                             "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(text::utf8_lossy("\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(text::utf8_lossy("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(text::utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

}  // namespace
}  // namespace lomo
