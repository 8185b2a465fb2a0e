// GGUF: dequantisers bit-exact against the `gguf` Python package; the default model
// (SmolLM2-135M-Instruct, Q4_1): logits against transformers reading the same file, and the ids
// of the tokenizer corpus against Hugging Face `tokenizers` with SmolLM2's pre-tokenizer over the
// GGUF's vocabulary (tests/tools/make_gguf_fixtures.py explains why not transformers' converter).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/half.h"
#include "io/gguf.h"
#include "model/default_model.h"
#include "model/gguf_model.h"
#include "model/llama.h"
#include "model/loader.h"
#include "test_run.h"
#include "test_util.h"
#include "text/tokenizer.h"

namespace lomo {
namespace gguf_test {  // named: a unity build joins test files

nlohmann::json read_json(const std::string& p) {
  return nlohmann::json::parse(std::ifstream(p));
}

TEST(Dequantize, BitExactAgainstTheGgufPackage) {
  const auto fx = read_json(test::fixture_dir("gguf") + "/dequant.json");
  for (auto it = fx.begin(); it != fx.end(); ++it) {
    const auto& t = it.value();
    const std::string hex = t["raw_hex"].get<std::string>();
    std::vector<uint8_t> raw(hex.size() / 2);
    for (size_t i = 0; i < raw.size(); ++i)
      raw[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    const int64_t n = t["elements"].get<int64_t>();
    std::vector<float> got(n);
    dequantize(static_cast<GgmlType>(t["type"].get<uint32_t>()), raw.data(), n, got.data());
    const auto want = t["expected_bits"].get<std::vector<uint32_t>>();
    ASSERT_EQ(static_cast<int64_t>(want.size()), n);
    int64_t equal = 0;
    for (int64_t i = 0; i < n; ++i) {
      uint32_t bits;
      std::memcpy(&bits, &got[i], 4);
      if (bits == want[i]) {
        ++equal;
      } else if (equal + 3 > i) {
        float w;
        std::memcpy(&w, &want[i], 4);
        ADD_FAILURE() << it.key() << " element " << i << ": ours " << got[i] << ", gguf " << w;
      }
    }
    EXPECT_EQ(equal, n) << it.key();
  }
}

TEST(Quantize, Fp16Bf16AndQ8RoundTrips) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_f16(-2.5f), 0xC100);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7C00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie rounds to even
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);  // tie to even
  for (uint32_t h = 0; h < 0x7C00; h += 7)
    EXPECT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h);
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[i] = std::sin(0.37f * i) * (i % 5 + 1);
  std::vector<uint8_t> q(68);
  quantize(GgmlType::Q8_0, x.data(), 64, q.data());
  std::vector<float> y(64);
  dequantize(GgmlType::Q8_0, q.data(), 64, y.data());
  for (int i = 0; i < 64; ++i)
    EXPECT_NEAR(y[i], x[i], 5.0 / 127 * 0.51 + 1e-3) << i;  // half a step of max|x|/127
}

class DefaultModel : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = default_model_path();
    ASSERT_TRUE(std::filesystem::exists(path_))
        << path_ << " is missing: run scripts/fetch_model.sh";
  }
  std::string path_;
};

TEST_F(DefaultModel, LogitsMatchTransformers) {
  test::TestRun run(path_);
  const Model& m = run.model;
  LlamaModel& net = run.net;
  EXPECT_EQ(m.config.n_layer, 30);
  EXPECT_TRUE(m.config.tied_embeddings);
  const auto prompts = read_json(test::fixture_dir("gguf") + "/smollm2_logits.json");
  SafetensorsFile ref(test::fixture_dir("gguf") + "/smollm2_logits.safetensors");
  std::vector<Sequence> seqs;
  for (const auto& p : prompts) seqs.push_back({p["ids"].get<std::vector<int32_t>>(), {}});
  const Batch batch = make_batch(seqs);
  std::vector<float> logits;
  net.forward(batch, nullptr, &logits);
  const int64_t V = m.config.vocab;
  double worst = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const int64_t L = static_cast<int64_t>(seqs[i].ids.size());
    const auto last = test::read_tensor(ref, "last." + std::to_string(i));
    const float* ours = logits.data() + (static_cast<int64_t>(i) * batch.T + L - 1) * V;
    worst = std::max(worst, test::rel_inf_error(ours, last.data(), V));
    const auto head = test::read_tensor(ref, "head." + std::to_string(i));
    for (int64_t t = 0; t < L; ++t) {
      const float* row = logits.data() + (static_cast<int64_t>(i) * batch.T + t) * V;
      worst = std::max(worst, test::rel_inf_error(row, head.data() + t * 128, 128));
    }
  }
  // Same dequantised weights, both fp32: only summation order differs, over 30 layers.
  std::printf("  SmolLM2-135M (GGUF Q4_1) logits vs transformers: worst relative error %.2e\n",
              worst);
  EXPECT_LE(worst, 1e-4);
}

// The loader converts through fp32 staging in pieces of whole rows (whole heads for the permuted
// q and k). Pieces of one row (one head for q, k) must give the very bits of one piece per tensor.
TEST_F(DefaultModel, LoadedInPiecesEqualsLoadedWhole) {
  MemoryTracker t1, t2;
  const Model whole = load_gguf_model(path_, t1, StorageDtype::BF16, {}, int64_t{1} << 40);
  const Model pieces = load_gguf_model(path_, t2, StorageDtype::BF16, {}, 1000);
  ASSERT_EQ(whole.params.all().size(), pieces.params.all().size());
  for (size_t i = 0; i < whole.params.all().size(); ++i) {
    const Param& a = whole.params.all()[i];
    const Param& b = pieces.params.all()[i];
    const size_t bytes = static_cast<size_t>(a.numel()) * (a.dtype == StorageDtype::F32 ? 4 : 2);
    EXPECT_EQ(std::memcmp(a.data.as<void>(), b.data.as<void>(), bytes), 0) << a.name;
  }
}

TEST_F(DefaultModel, TokenizerIdsMatchTransformers) {
  const auto tok = text::load_tokenizer(path_);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), 49152);
  std::ifstream corpus(test::fixture_dir("tokenizers") + "/corpus.jsonl");
  std::ifstream ids(test::fixture_dir("gguf") + "/smollm2_ids.jsonl");
  std::string c, r;
  size_t n = 0, equal = 0;
  while (std::getline(corpus, c) && std::getline(ids, r)) {
    ++n;
    const std::string text = nlohmann::json::parse(c)["text"].get<std::string>();
    const auto want = nlohmann::json::parse(r).get<std::vector<int32_t>>();
    const auto got = tok->encode(text);
    if (got == want) {
      ++equal;
    } else if (n - equal <= 5) {
      ADD_FAILURE() << "line " << n << " " << nlohmann::json(text).dump() << "\n ours "
                    << nlohmann::json(got).dump() << "\n  ref " << nlohmann::json(want).dump();
    }
  }
  std::printf("  SmolLM2 tokenizer from GGUF: %zu/%zu corpus lines equal to HF tokenizers\n", equal,
              n);
  EXPECT_GE(n, 2000u);
  EXPECT_EQ(equal, n);
}

}  // namespace gguf_test
}  // namespace lomo
