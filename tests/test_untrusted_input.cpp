// Inputs the fuzzers (fuzz/, docs/reliability.md "Untrusted input") or their review found
// mishandled: each must now end in a lomo::Error naming the file and the field, never a crash, a
// foreign exception, undefined behaviour or an allocation the file does not imply. The raw
// inputs are also kept in fuzz/corpus/<target>/regress-*, which every fuzz replay runs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/params.h"
#include "text/bpe.h"
#include "text/gguf_vocab.h"
#include "text/sentencepiece.h"
#include "text/tokenizer.h"

namespace lomo {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("lomo_untrusted_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Runs fn, which must throw lomo::Error whose message contains every one of `parts`.
template <class Fn>
void expect_error(Fn fn, std::initializer_list<const char*> parts) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const char* p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << "message \"" << e.what() << "\" lacks \"" << p << "\"";
  }
}

TEST(UntrustedSafetensors, HeaderOverTheFormatsLimitIsRefusedBeforeItIsRead) {
  // A sparse file just long enough for a 100 MB + 1 header: refused on the length alone.
  const fs::path d = temp_dir("st_header");
  const fs::path p = d / "big.safetensors";
  const uint64_t len = 100'000'001;
  {
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(&len), 8);
  }
  fs::resize_file(p, 8 + len + 8);
  expect_error([&] { SafetensorsFile f(p.string()); }, {"big.safetensors", "100 MB"});
  fs::remove_all(d);
}

TEST(UntrustedSafetensors, DimensionBeyondInt64BesideAZeroIsRefused) {
  const fs::path d = temp_dir("st_dim");
  const std::string hdr = R"({"x":{"dtype":"F32","shape":[0,9223372036854775809],)"
                          R"("data_offsets":[0,0]}})";
  const uint64_t n = hdr.size();
  {
    std::ofstream out(d / "x.safetensors", std::ios::binary);
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << hdr;
  }
  expect_error([&] { SafetensorsFile f((d / "x.safetensors").string()); },
               {"x.safetensors", "\"x\"", "impossibly large"});
  fs::remove_all(d);
}

nlohmann::json tiny_config() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"hidden_size", 64},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"intermediate_size", 128},
          {"vocab_size", 100}};
}

TEST(UntrustedConfig, HugeDimensionsAreRefusedBeforeTheTensorListIsBuilt) {
  // Before: num_hidden_layers = 10^12 parsed, and expected_params then tried to list 10^13
  // tensors (an unbounded allocation from 165 bytes of config.json).
  for (const auto& [key, value] :
       {std::pair<const char*, uint64_t>{"num_hidden_layers", 1'000'000'000'000},
        {"hidden_size", uint64_t{1} << 40},
        {"vocab_size", uint64_t{1} << 62},
        {"intermediate_size", 18446744073709551615ull},
        {"max_position_embeddings", uint64_t{1} << 40}}) {
    nlohmann::json j = tiny_config();
    j[key] = value;
    expect_error([&] { parse_config(j, "config.json"); }, {"config.json", key, "at most"});
  }
  nlohmann::json j = tiny_config();
  j["num_attention_heads"] = 4096;
  j["head_dim"] = 1 << 20;
  expect_error([&] { parse_config(j, "config.json"); },
               {"num_attention_heads", "attention columns"});
  // The largest released shapes stay well inside the bounds.
  j = tiny_config();
  j["hidden_size"] = 16384;
  j["num_hidden_layers"] = 126;
  j["num_attention_heads"] = 128;
  j["num_key_value_heads"] = 8;
  j["intermediate_size"] = 53248;
  j["vocab_size"] = 128256;
  j["max_position_embeddings"] = 131072;
  EXPECT_EQ(count_params(parse_config(j, "config.json")), 405'853'388'800);
}

TEST(UntrustedConfig, RopeScalingNumbersMustBeFiniteAndInRange) {
  // Before: original_max_position_embeddings = 1e300 was cast to int64 (undefined behaviour).
  nlohmann::json j = tiny_config();
  j["rope_scaling"] = {
      {"rope_type", "llama3"}, {"factor", 8.0}, {"original_max_position_embeddings", 1e300}};
  expect_error([&] { parse_config(j, "config.json"); },
               {"config.json", "rope_scaling.original_max_position_embeddings"});
  j["rope_scaling"]["original_max_position_embeddings"] = 0.5;
  expect_error([&] { parse_config(j, "config.json"); },
               {"rope_scaling.original_max_position_embeddings"});
  // JSON text cannot spell inf or NaN, but a GGUF file's float metadata can (config_from_gguf
  // hands them to parse_config).
  for (double bad : {std::numeric_limits<double>::infinity(), std::nan("")}) {
    j = tiny_config();
    j["rope_theta"] = bad;
    expect_error([&] { parse_config(j, "model.gguf"); }, {"model.gguf", "rope_theta", "finite"});
    j = tiny_config();
    j["rms_norm_eps"] = bad;
    expect_error([&] { parse_config(j, "model.gguf"); }, {"rms_norm_eps", "finite"});
  }
}

nlohmann::json tiny_tokenizer() {
  return nlohmann::json::parse(R"({
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "added_tokens": [{"id": 3, "content": "<s>", "special": true}]})");
}

TEST(UntrustedTokenizerJson, FieldsOfTheWrongTypeNameTheField) {
  // Before: each of these escaped as a nlohmann::json exception (or, for a missing key read
  // through a const operator[], undefined behaviour).
  ASSERT_NO_THROW(text::parse_tokenizer_json(tiny_tokenizer(), "tokenizer.json"));
  const std::pair<const char*, const char*> cases[] = {
      {R"({"model": {"vocab": {"a": "zero"}}})", "model.vocab[\"a\"]"},
      {R"({"model": {"type": 5, "vocab": {}}})", "model.type"},
      {R"({"model": {"vocab": {}}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": {"a": 1, "b": 2}}})",
       "pretokenizers"},
      {R"({"model": {"vocab": {}}, "pre_tokenizer": {"type": "ByteLevel", "use_regex": "yes"}})",
       "pre_tokenizer.use_regex"},
      {R"({"model": {"vocab": {}}, "normalizer": 7})", "normalizer"},
      {R"({"model": {"vocab": {}}, "added_tokens": [{"id": 0}]})", "added_tokens[0]"},
      {R"({"model": {"vocab": {}, "merges": 3}})", "model.merges"},
      {R"({"model": {"vocab": {"a": 0}}, "post_processor": {"type": "TemplateProcessing",
          "single": [{"SpecialToken": {"id": "<s>"}}], "special_tokens": {"<s>": {"ids": {"x": 1}}}}})",
       "special_tokens"},
  };
  for (const auto& [text, field] : cases) {
    SCOPED_TRACE(text);
    nlohmann::json j = nlohmann::json::parse(text);
    if (!j["model"].contains("type")) j["model"]["type"] = "BPE";
    if (!j.contains("pre_tokenizer")) j["pre_tokenizer"] = tiny_tokenizer()["pre_tokenizer"];
    expect_error([&] { text::parse_tokenizer_json(j, "tokenizer.json"); },
                 {"tokenizer.json", field});
  }
}

TEST(UntrustedTokenizerJson, PreTokenizerTypeOfAnotherTypeInAFolder) {
  // Found by fuzz/tokenizer_json_fuzz.cpp: load_tokenizer's Metaspace probe read
  // pre_tokenizer.type with value(), a json type error when it is not a string.
  const fs::path d = temp_dir("tok_type");
  nlohmann::json j = tiny_tokenizer();
  j["pre_tokenizer"]["type"] = false;
  std::ofstream(d / "tokenizer.json") << j.dump();
  expect_error([&] { text::load_tokenizer(d.string()); }, {"tokenizer.json", "pre_tokenizer"});
  fs::remove_all(d);
}

TEST(UntrustedTokenizerJson, IdsBeyondTheTokensListedAreRefused) {
  // Before: an added token with id 2^31 − 1 made BpeTokenizer allocate 2^31 strings (64 GiB)
  // from a 200-byte file; a vocabulary id up to 2^24 allocated 512 MiB.
  nlohmann::json j = tiny_tokenizer();
  j["added_tokens"][0]["id"] = 2147483647;
  expect_error([&] { text::parse_tokenizer_json(j, "tokenizer.json"); },
               {"tokenizer.json", "added_tokens[0].id", "[0, 4)"});
  j = tiny_tokenizer();
  j["model"]["vocab"]["b"] = 1 << 24;
  expect_error([&] { text::parse_tokenizer_json(j, "tokenizer.json"); }, {"model.vocab[\"b\"]"});
  // BOS named by the post-processor only as an added token's id still writes back.
  j = tiny_tokenizer();
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<s>"}}}}}},
                         {"special_tokens", {{"<s>", {{"ids", {3}}}}}}};
  const text::BpeParts p = text::parse_tokenizer_json(j, "tokenizer.json");
  EXPECT_EQ(p.bos_id, 3);
  EXPECT_EQ(text::to_tokenizer_json(p)["post_processor"]["special_tokens"]["<s>"]["ids"][0], 3);
}

GgufValue str(const std::string& s) {
  return {GgufType::STRING, GgufType::U32, s};
}
GgufValue strings(const std::vector<std::string>& v) {
  return {GgufType::ARRAY, GgufType::STRING, v};
}

std::map<std::string, GgufValue> tiny_gguf_vocab() {
  return {{"tokenizer.ggml.model", str("gpt2")},
          {"tokenizer.ggml.tokens", strings({"a", "b", "ab"})},
          {"tokenizer.ggml.merges", strings({"a b"})}};
}

TEST(UntrustedGguf, VocabularyFieldsAreCheckedBeforeUse) {
  const fs::path d = temp_dir("gguf_vocab");
  const std::string path = (d / "v.gguf").string();
  auto expect = [&](std::map<std::string, GgufValue> kv, std::initializer_list<const char*> parts) {
    write_gguf(path, kv, {});
    const GgufFile f(path);
    expect_error([&] { text::tokenizer_from_gguf(f); }, parts);
  };
  write_gguf(path, tiny_gguf_vocab(), {});
  EXPECT_EQ(text::tokenizer_from_gguf(GgufFile(path))->vocab_size(), 3);
  // Before: a json type error (strings where integers belong), a std::out_of_range on export
  // (an id outside the vocabulary), a json type error when the vocabulary was written back as
  // tokenizer.json (a token that is not UTF-8).
  auto kv = tiny_gguf_vocab();
  kv["tokenizer.ggml.token_type"] = strings({"1", "1", "3"});
  expect(kv, {"v.gguf", "tokenizer.ggml.token_type"});
  kv = tiny_gguf_vocab();
  kv["tokenizer.ggml.pre"] = {GgufType::U32, GgufType::U32, 7};
  expect(kv, {"v.gguf", "tokenizer.ggml.pre"});
  kv = tiny_gguf_vocab();
  kv["tokenizer.ggml.bos_token_id"] = {GgufType::U32, GgufType::U32, 3};
  expect(kv, {"v.gguf", "tokenizer.ggml.bos_token_id", "3 tokens"});
  kv = tiny_gguf_vocab();
  kv["tokenizer.ggml.tokens"] = strings({"a", "b", "ab\xC3"});
  expect(kv, {"v.gguf", "tokenizer.ggml.tokens[2]", "UTF-8"});
  fs::remove_all(d);
}

TEST(UntrustedSentencePiece, LibraryExceptionsBecomeErrors) {
  // Found by fuzz/sentencepiece_fuzz.cpp: a model whose unigram trie gets an empty key makes
  // libsentencepiece throw Darts::Details::Exception, which escaped as a foreign exception.
  const std::string path =
      std::string(LOMO_SOURCE_DIR) + "/fuzz/corpus/sentencepiece/regress-darts-exception";
  ASSERT_TRUE(fs::exists(path));
  expect_error([&] { text::SentencePieceTokenizer t(path); },
               {"regress-darts-exception", "not a SentencePiece model", "libsentencepiece"});
}

}  // namespace
}  // namespace lomo
