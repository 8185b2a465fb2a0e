// GGUF export and import: round trips that must be exact, and corrupted files that must end in
// a clear lomo::Error (never a crash, a hang or a huge allocation).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "core/rng.h"
#include "io/gguf.h"
#include "model/default_model.h"
#include "model/export.h"
#include "model/gguf_model.h"
#include "model/loader.h"
#include "test_run.h"
#include "test_util.h"
#include "text/tokenizer.h"

namespace lomo {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("lomo_gguf_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void expect_same_params(const Model& a, const Model& b, const std::string& what) {
  ASSERT_EQ(a.params.all().size(), b.params.all().size()) << what;
  for (size_t i = 0; i < a.params.all().size(); ++i) {
    const Param& p = a.params.all()[i];
    const Param& q = b.params.all()[i];
    ASSERT_EQ(p.name, q.name) << what;
    ASSERT_EQ(p.shape, q.shape) << what << " " << p.name;
    ASSERT_EQ(0, std::memcmp(p.f(), q.f(), p.numel() * 4))
        << what << ": first differing tensor " << p.name;
  }
}

// LLaMA with attention_bias: q and k rows, and their biases, are permuted per head in GGUF. The
// loader reads pieces of whole heads (staging of one element: one head, or one row, per piece);
// through an F32 file the weights come back bit for bit, biases included.
TEST(GgufRoundTrip, LlamaWithAttentionBiasReadInPiecesIsExact) {
  ModelConfig c = load_config(test::fixture_dir("llama_gqa") + "/model/config.json");
  c.qkv_bias = c.o_bias = true;  // as config.json's attention_bias sets them
  c.rope.scaling = RopeScaling::None;  // the fixture's llama3 scaling has no GGUF export yet
  test::TestRun run(c, 5);
  for (Param& p : run.model.params.all()) {  // biases start at 0: give them distinct values
    if (p.role != ParamRole::Bias) continue;
    for (int64_t i = 0; i < p.numel(); ++i) p.f()[i] = 0.01f * static_cast<float>(i + 1);
  }
  const fs::path d = temp_dir("bias");
  const std::string path = (d / "m.gguf").string();
  export_gguf(path, run.model, nullptr, "", GgmlType::F32);
  MemoryTracker t;
  const Model whole = load_gguf_model(path, t);
  ASSERT_TRUE(whole.config.qkv_bias);
  expect_same_params(run.model, whole, "LLaMA with biases, F32 GGUF, default pieces");
  expect_same_params(run.model, load_gguf_model(path, t, StorageDtype::F32, {}, 1),
                     "LLaMA with biases, F32 GGUF, one head or row per piece");
  fs::remove_all(d);
}

TEST(GgufRoundTrip, DefaultModelThroughF32GgufAndHfFolderIsExact) {
  const std::string src = default_model_path();
  ASSERT_TRUE(fs::exists(src)) << src << " is missing: run scripts/fetch_model.sh";
  const fs::path d = temp_dir("default");
  MemoryTracker t;
  const Model a = load_model(src, t);
  const auto tok = text::load_tokenizer(src);
  export_gguf((d / "m.gguf").string(), a, tok.get(), src, GgmlType::F32);
  {
    const Model b = load_model((d / "m.gguf").string(), t);
    expect_same_params(a, b, "GGUF -> ours -> GGUF f32 -> ours");
    const auto tok2 = text::load_tokenizer((d / "m.gguf").string());
    const std::string s = "Hello world 12345, <|im_start|>user\nnaïve café 日本<|im_end|>";
    EXPECT_EQ(tok2->encode(s), tok->encode(s));
    const GgufFile g((d / "m.gguf").string());
    ASSERT_NE(g.get("tokenizer.chat_template"), nullptr) << "tokenizer metadata carried over";
  }
  export_hf((d / "hf").string(), a, tok.get(), src);
  {
    const Model c = load_model((d / "hf").string(), t);
    expect_same_params(a, c, "GGUF -> ours -> HF folder -> ours");
    const auto tok3 = text::load_tokenizer((d / "hf").string());
    EXPECT_EQ(tok3->encode("Numbers 2026 and spaces   9"),
              tok->encode("Numbers 2026 and spaces   9"));
    EXPECT_EQ(tok3->eos_id, tok->eos_id);
    // And from the folder back to GGUF (the chat workflow's last step, export for llama.cpp):
    // the special tokens the folder resolved (tokenizer_config.json) and its chat template stay.
    export_gguf((d / "hf.gguf").string(), c, tok3.get(), (d / "hf").string(), GgmlType::F32);
    const auto tok4 = text::load_tokenizer((d / "hf.gguf").string());
    EXPECT_EQ(tok4->eos_id, tok->eos_id);
    EXPECT_EQ(tok4->bos_id, tok->bos_id);
    EXPECT_EQ(tok4->add_bos, tok->add_bos);
    const GgufFile src_file(src), out((d / "hf.gguf").string());
    ASSERT_NE(out.get("tokenizer.chat_template"), nullptr) << "the folder's template was lost";
    EXPECT_EQ(out.get("tokenizer.chat_template")->value,
              src_file.get("tokenizer.chat_template")->value);
  }
  fs::remove_all(d);
}

TEST(GgufRoundTrip, HalfAndQ8ExportsStayClose) {
  const fs::path d = temp_dir("types");
  MemoryTracker t;
  const Model a = load_model(test::fixture_dir("qwen2_bias") + "/model", t);
  for (const char* ty : {"f16", "bf16", "q8_0"}) {
    const std::string path = (d / (std::string(ty) + ".gguf")).string();
    export_gguf(path, a, nullptr, test::fixture_dir("qwen2_bias") + "/model",
                parse_gguf_out_type(ty));
    const Model b = load_model(path, t);
    // Relative error bounds of the encodings: f16 2^-11, bf16 2^-8, q8_0 half a step of max/127.
    const double tol = std::string(ty) == "f16" ? 1e-3 : std::string(ty) == "bf16" ? 4e-3 : 1e-2;
    for (size_t i = 0; i < a.params.all().size(); ++i) {
      const Param& p = a.params.all()[i];
      EXPECT_LE(test::rel_inf_error(b.params.all()[i].f(), p.f(), p.numel()), tol)
          << ty << " " << p.name;
    }
  }
  fs::remove_all(d);
}

// A small GGUF with a tokenizer: the eval fixture model exported by us.
std::string small_gguf(const fs::path& d) {
  MemoryTracker t;
  const std::string src = test::fixture_dir("eval_model");
  const Model m = load_model(src, t);
  const auto tok = text::load_tokenizer(src);
  const std::string path = (d / "small.gguf").string();
  export_gguf(path, m, tok.get(), src, GgmlType::Q8_0);
  return path;
}

// Loads model and tokenizer; returns "" on success, the lomo::Error message otherwise.
std::string try_load(const std::string& path) {
  try {
    MemoryTracker t;
    load_model(path, t);
    text::load_tokenizer(path);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void spit(const std::string& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

TEST(GgufFuzz, TruncatedAndCorruptedFilesEndInClearErrors) {
  const fs::path d = temp_dir("fuzz");
  const std::string good = small_gguf(d);
  ASSERT_EQ(try_load(good), "");
  const std::string bytes = slurp(good);
  const std::string bad = (d / "bad.gguf").string();
  // 1. Every truncation point in the header and a spread through the data: always an error.
  int truncations = 0;
  for (size_t len = 0; len < bytes.size(); len += (len < 200000 ? 97 : 50021)) {
    spit(bad, bytes.substr(0, len));
    const std::string msg = try_load(bad);
    EXPECT_NE(msg, "") << "truncated to " << len << " bytes and still loaded";
    ++truncations;
  }
  // 2. Targeted corruptions of the header's counts, lengths and offsets.
  auto patch_u64 = [&](size_t off, uint64_t v) {
    std::string b = bytes;
    std::memcpy(b.data() + off, &v, 8);
    spit(bad, b);
    return try_load(bad);
  };
  EXPECT_NE(patch_u64(8, 1ull << 40).find("corrupt GGUF header"),
            std::string::npos);  // tensor count
  EXPECT_NE(patch_u64(16, 1ull << 40).find("corrupt GGUF header"),
            std::string::npos);  // metadata count
  EXPECT_NE(patch_u64(24, 1ull << 50).find("beyond the end of the file"),
            std::string::npos);  // first key length
  {
    std::string b = bytes;
    b[0] = 'X';
    spit(bad, b);
    EXPECT_NE(try_load(bad).find("not a model"), std::string::npos);
  }
  // 3. Random byte flips in the header: each either loads (the flip hit something harmless, such
  // as a character of general.name) or ends in lomo::Error; anything else fails the test.
  const GgufFile g(good);
  const size_t header_end = std::min<size_t>(bytes.size(), 200000);
  int errors = 0, loaded = 0;
  for (uint64_t i = 0; i < 400; ++i) {
    std::string b = bytes;
    const int flips = 1 + static_cast<int>(counter_random(9, 1, i) % 4);
    for (int k = 0; k < flips; ++k) {
      const size_t pos = counter_random(9, 2, i * 8 + k) % header_end;
      b[pos] = static_cast<char>(counter_random(9, 3, i * 8 + k) & 0xFF);
    }
    spit(bad, b);
    try {
      (try_load(bad).empty() ? loaded : errors)++;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "flip run " << i << " ended in a non-lomo exception: " << e.what();
    }
  }
  std::printf("  fuzz: %d truncations all refused; 400 corrupted headers: %d refused, %d loaded\n",
              truncations, errors, loaded);
  fs::remove_all(d);
}

}  // namespace
}  // namespace lomo
