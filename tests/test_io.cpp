// Safetensors and model folders: round trips, 16-bit storage, sharded checkpoints.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/half.h"
#include "io/safetensors.h"
#include "model/loader.h"
#include "test_util.h"

namespace lomo {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("lomo_io_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Writes a safetensors file by hand (to test dtypes our writer does not produce).
void write_raw(const fs::path& p, const std::string& header, const std::string& data) {
  std::ofstream out(p, std::ios::binary);
  const uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << data;
}

TEST(Safetensors, Fp16AndBf16AreConvertedExactly) {
  const fs::path d = temp_dir("dtypes");
  // fp16: 1.0, −2.5, 65504 (max), 2^-24 (smallest subnormal); bf16: 1.0, −2.5, 3.0e38-ish.
  const uint16_t f16[4] = {0x3C00, 0xC100, 0x7BFF, 0x0001};
  const uint16_t b16[3] = {0x3F80, 0xC020, 0x7F61};
  std::string data(reinterpret_cast<const char*>(f16), 8);
  data.append(reinterpret_cast<const char*>(b16), 6);
  write_raw(d / "t.safetensors",
            R"({"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},)"
            R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[8,14]}})",
            data);
  SafetensorsFile f((d / "t.safetensors").string());
  float a[4], b[3];
  f.read(*f.find("a"), a);
  f.read(*f.find("b"), b);
  EXPECT_EQ(a[0], 1.0f);
  EXPECT_EQ(a[1], -2.5f);
  EXPECT_EQ(a[2], 65504.0f);
  EXPECT_EQ(a[3], std::ldexp(1.0f, -24));
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -2.5f);
  EXPECT_EQ(b[2], bf16_to_f32(0x7F61));
  EXPECT_GT(b[2], 2.9e38f);
  fs::remove_all(d);
}

TEST(ModelFolder, SaveThenLoadIsIdentical) {
  const fs::path d = temp_dir("roundtrip");
  MemoryTracker t;
  Model a = load_model(test::fixture_dir("qwen2_bias") + "/model", t);
  save_model((d / "m").string(), a.config, a.params);
  Model b = load_model((d / "m").string(), t);
  EXPECT_EQ(b.config.arch, Arch::Qwen2);
  EXPECT_EQ(b.config.rope.scaling, RopeScaling::Linear);
  ASSERT_EQ(a.params.all().size(), b.params.all().size());
  for (size_t i = 0; i < a.params.all().size(); ++i) {
    const Param& p = a.params.all()[i];
    const Param& q = b.params.all()[i];
    ASSERT_EQ(p.name, q.name);
    ASSERT_EQ(0, std::memcmp(p.f(), q.f(), p.numel() * 4)) << p.name;
  }
  fs::remove_all(d);
}

TEST(ModelFolder, Bf16SaveThenLoadIsIdentical) {
  const fs::path d = temp_dir("bf16");
  MemoryTracker t;
  Model a = load_model(test::fixture_dir("smollm_tied") + "/model", t, StorageDtype::BF16);
  save_model((d / "m").string(), a.config, a.params);
  SafetensorsFile f((d / "m/model.safetensors").string());
  EXPECT_EQ(f.find("model.embed_tokens.weight")->dtype, DType::BF16);
  EXPECT_EQ(f.find("model.norm.weight")->dtype, DType::F32);
  Model b = load_model((d / "m").string(), t, StorageDtype::BF16);
  for (size_t i = 0; i < a.params.all().size(); ++i) {
    const Param& p = a.params.all()[i];
    const size_t bytes = static_cast<size_t>(p.numel()) * (p.dtype == StorageDtype::F32 ? 4 : 2);
    ASSERT_EQ(0, std::memcmp(p.data.as<void>(), b.params.all()[i].data.as<void>(), bytes))
        << p.name;
  }
  fs::remove_all(d);
}

TEST(ModelFolder, ShardedCheckpointLoads) {
  const fs::path d = temp_dir("sharded");
  MemoryTracker t;
  Model a = load_model(test::fixture_dir("llama_gqa") + "/model", t);
  // Split the tensors over two shards and write the index transformers would.
  std::vector<TensorView> s1, s2;
  nlohmann::json index = {{"metadata", {{"total_size", 0}}},
                          {"weight_map", nlohmann::json::object()}};
  for (const auto& p : a.params.all()) {
    const bool first = p.id % 2 == 0;
    (first ? s1 : s2).push_back({p.name, p.shape, p.f()});
    index["weight_map"][p.name] =
        first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors((d / "model-00001-of-00002.safetensors").string(), s1, {{"format", "pt"}});
  write_safetensors((d / "model-00002-of-00002.safetensors").string(), s2, {{"format", "pt"}});
  std::ofstream(d / "model.safetensors.index.json") << index.dump();
  fs::copy(test::fixture_dir("llama_gqa") + "/model/config.json", d / "config.json");
  Model b = load_model(d.string(), t);
  for (size_t i = 0; i < a.params.all().size(); ++i) {
    const Param& p = a.params.all()[i];
    ASSERT_EQ(0, std::memcmp(p.f(), b.params.all()[i].f(), p.numel() * 4)) << p.name;
  }
  fs::remove_all(d);
}

TEST(Config, RefusesUnsupportedFieldsByName) {
  auto base = nlohmann::json{{"architectures", {"LlamaForCausalLM"}},
                             {"hidden_size", 32},
                             {"intermediate_size", 64},
                             {"num_hidden_layers", 1},
                             {"num_attention_heads", 4},
                             {"vocab_size", 10}};
  EXPECT_NO_THROW(parse_config(base, "c"));
  auto expect_field = [&](nlohmann::json j, const std::string& field) {
    try {
      parse_config(j, "c");
      ADD_FAILURE() << "accepted a config with a bad " << field;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("\"" + field + "\""), std::string::npos) << e.what();
    }
  };
  auto j = base;
  j["num_key_value_heads"] = 3;
  expect_field(j, "num_key_value_heads");
  j = base;
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 2.0}};
  expect_field(j, "rope_scaling");
  j = base;
  j["mlp_bias"] = true;
  expect_field(j, "mlp_bias");
  j = base;
  j.erase("hidden_size");
  expect_field(j, "hidden_size");
  j = base;
  j["vocab_size"] = -3;
  expect_field(j, "vocab_size");
}

}  // namespace
}  // namespace lomo
