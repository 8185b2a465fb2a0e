// Broken model folders, data files and flags, fed to the real `lomo train` binary: each must exit
// non-zero with a message naming the problem, and leave no output folder (not even a partial one).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "ops/backend.h"
#include "test_util.h"

namespace lomo {
namespace {

namespace fs = std::filesystem;

using Result = test::CommandResult;

Result run(const std::string& args) {
  return test::run_command(std::string(LOMO_BINARY) + " " + args + " 2>&1");
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void spit(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out << s;
}

class BadInputs : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("lomo_bad_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    model_ = dir_ / "model";
    fs::copy(test::fixture_dir("llama_gqa") + "/model", model_);
    data_ = dir_ / "data.jsonl";
    spit(data_, "{\"input_ids\": [1, 2, 3, 4, 5]}\n{\"input_ids\": [7, 8, 9]}\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs train and checks: non-zero exit, `needle` in the message, no output, no staging folder.
  void expect_failure(const std::string& needle, const std::string& extra = "",
                      const std::string& steps = "--steps 1") {
    const fs::path out = dir_ / "out";
    const Result r = run("train --model " + model_.string() + " --data " + data_.string() +
                         " --out " + out.string() + " --threads 1 " + steps + " " + extra);
    // Refused as a user error (exit 1, lomo::Error): never a crash by signal, never an internal
    // assertion (exit 3).
    EXPECT_EQ(r.signal, 0) << "killed by signal " << r.signal << ":\n" << r.output;
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos)
        << "expected the message to mention \"" << needle << "\", got:\n"
        << r.output;
    EXPECT_FALSE(fs::exists(out)) << "output folder was written";
    for (const auto& e : fs::directory_iterator(dir_)) {
      EXPECT_EQ(e.path().filename().string().find("out.partial"), std::string::npos)
          << "staging folder left behind: " << e.path();
    }
  }

  // Rewrites model.safetensors with a new header (data block kept).
  void rewrite_header(const std::function<void(nlohmann::json&)>& edit, int64_t data_cut = 0) {
    const std::string bytes = slurp(model_ / "model.safetensors");
    uint64_t len;
    std::memcpy(&len, bytes.data(), 8);
    nlohmann::json h = nlohmann::json::parse(bytes.substr(8, len));
    edit(h);
    std::string hs = h.dump();
    const uint64_t nl = hs.size();
    std::string data = bytes.substr(8 + len);
    data.resize(data.size() - data_cut);
    spit(model_ / "model.safetensors",
         std::string(reinterpret_cast<const char*>(&nl), 8) + hs + data);
  }

  void edit_config(const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json c = nlohmann::json::parse(slurp(model_ / "config.json"));
    edit(c);
    spit(model_ / "config.json", c.dump());
  }

  fs::path dir_, model_, data_;
};

TEST_F(BadInputs, GoodInputsTrain) {
  // The control: the same folder and data, untouched, train and write the output.
  const Result r = run("train --model " + model_.string() + " --data " + data_.string() +
                       " --out " + (dir_ / "out").string() + " --steps 1 --threads 1");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "out" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "memory.json"));
}

// LoRA settings the engine cannot run are refused before any weight is read: the weights are
// truncated here, so a message about them would mean the weights were read first.
TEST_F(BadInputs, LoraSettingsAreRefusedBeforeAnyWeightIsRead) {
  const std::string b = slurp(model_ / "model.safetensors");
  spit(model_ / "model.safetensors", b.substr(0, b.size() / 2));
  expect_failure("\"fc1\" is not a linear layer", "--lora-rank 4 --lora-targets q,fc1");
  expect_failure("k_proj allows", "--lora-rank 17 --lora-targets k");  // k_proj is 16 x 32
  expect_failure("--optimizer adamw would store", "--lora-rank 4 --optimizer adamw");
  expect_failure("--optimizer sgd would store", "--lora-rank 4 --optimizer sgd --base-lr 0.1");
  expect_failure("fp16", "--lora-rank 4 --dtype fp16");
  expect_failure("--lr is not used with LoRA", "--lora-rank 4 --lr 0.1");
  expect_failure("--lora-alpha", "--lora-rank 4 --lora-alpha 0");
  expect_failure("LoRA is off", "--lora-lr 1e-3");
  expect_failure("LoRA is off", "--merge");
  expect_failure("--base-lr", "--lora-rank 4 --base-lr -1");
  expect_failure("--lora-dropout", "--lora-rank 4 --lora-dropout 1");
  expect_failure("not a PEFT adapter folder", "--lora-resume " + (dir_ / "nothing").string());
  // An adapter folder of another rank, and one given where the model goes.
  const fs::path adapter = dir_ / "adapter";
  fs::create_directories(adapter);
  spit(adapter / "adapter_config.json",
       R"({"peft_type": "LORA", "r": 3, "lora_alpha": 6, "target_modules": ["q_proj"]})");
  expect_failure("contradicts --lora-resume", "--lora-rank 4 --lora-resume " + adapter.string());
  expect_failure("contradicts --lora-resume", "--lora-targets q,v --lora-resume " + adapter.string());
  // Its tensors are read before the model's weights too.
  expect_failure("has no adapter_model.safetensors", "--lora-resume " + adapter.string());
  const Result r = run("train --model " + adapter.string() + " --data " + data_.string() +
                       " --out " + (dir_ / "out").string() + " --steps 1");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("holds LoRA adapters"), std::string::npos) << r.output;
}

TEST_F(BadInputs, TruncatedSafetensors) {
  const std::string b = slurp(model_ / "model.safetensors");
  spit(model_ / "model.safetensors", b.substr(0, b.size() / 2));
  expect_failure("truncated");
}

TEST_F(BadInputs, FileShorterThanHeaderLength) {
  spit(model_ / "model.safetensors", "abc");
  expect_failure("shorter than the 8-byte header length");
}

TEST_F(BadInputs, HeaderLengthBeyondFile) {
  std::string b = slurp(model_ / "model.safetensors");
  const uint64_t huge = 1ull << 50;
  std::memcpy(b.data(), &huge, 8);
  spit(model_ / "model.safetensors", b);
  expect_failure("exceeds the file size");
}

TEST_F(BadInputs, HeaderNotJson) {
  std::string b = slurp(model_ / "model.safetensors");
  b[8] = '#';
  spit(model_ / "model.safetensors", b);
  expect_failure("invalid JSON");
}

TEST_F(BadInputs, UnknownDtype) {
  rewrite_header([](nlohmann::json& h) { h["model.norm.weight"]["dtype"] = "I64"; });
  expect_failure("unsupported dtype \"I64\"");
}

TEST_F(BadInputs, OverlappingOffsets) {
  rewrite_header([](nlohmann::json& h) {
    auto a = h["model.norm.weight"]["data_offsets"];
    h["model.layers.0.input_layernorm.weight"]["data_offsets"] = a;
  });
  expect_failure("overlap");
}

TEST_F(BadInputs, MissingTensor) {
  rewrite_header([](nlohmann::json& h) { h.erase("model.layers.1.mlp.up_proj.weight"); });
  expect_failure("\"model.layers.1.mlp.up_proj.weight\" is missing");
}

TEST_F(BadInputs, ExtraTensor) {
  rewrite_header(
      [](nlohmann::json& h) { h["model.layers.9.extra.weight"] = h["model.norm.weight"]; });
  // Sharing the offsets of another tensor also overlaps; either message names the tensor.
  expect_failure("model.layers.9.extra.weight");
}

TEST_F(BadInputs, ShapeMismatch) {
  edit_config([](nlohmann::json& c) { c["intermediate_size"] = 48; });
  expect_failure(
      "model.layers.0.mlp.gate_proj.weight\": expected [48, 32] from config.json, file has [64, "
      "32]");
}

TEST_F(BadInputs, MalformedConfig) {
  spit(model_ / "config.json", "{\"hidden_size\": 32,");
  expect_failure("config.json: invalid JSON");
}

TEST_F(BadInputs, UnsupportedArchitecture) {
  edit_config([](nlohmann::json& c) { c["architectures"] = {"GPT2LMHeadModel"}; });
  expect_failure("\"GPT2LMHeadModel\" is not supported");
}

TEST_F(BadInputs, UnsupportedActivation) {
  edit_config([](nlohmann::json& c) { c["hidden_act"] = "gelu"; });
  expect_failure("hidden_act");
}

TEST_F(BadInputs, MissingModelFolder) {
  model_ = dir_ / "nowhere";
  expect_failure("not a model folder or GGUF file");
}

TEST_F(BadInputs, EmptyDataFile) {
  spit(data_, "\n\n");
  expect_failure("holds no examples");
}

TEST_F(BadInputs, TokenIdBeyondVocab) {
  spit(data_, "{\"input_ids\": [1, 2]}\n{\"input_ids\": [1, 128]}\n");
  expect_failure("data.jsonl:2: input_ids[1] = 128 is outside the vocabulary [0, 128)");
}

TEST_F(BadInputs, SequenceLongerThanContext) {
  std::string ids;
  for (int i = 0; i < 65; ++i) ids += (i ? "," : "") + std::to_string(i);
  spit(data_, "{\"input_ids\": [" + ids + "]}\n");
  expect_failure("65 tokens exceed the model's context (max_position_embeddings = 64)");
}

TEST_F(BadInputs, DataLineNotJson) {
  spit(data_, "{\"input_ids\": [1, 2]}\n{\"input_ids\": [1, 2\n");
  expect_failure("data.jsonl:2: invalid JSON");
}

TEST_F(BadInputs, SingleTokenSequence) {
  spit(data_, "{\"input_ids\": [5]}\n");
  expect_failure("at least 2 tokens");
}

TEST_F(BadInputs, BadFlagValue) {
  expect_failure("--lr: expected a number, got \"fast\"", "--lr fast");
}

TEST_F(BadInputs, UnknownFlag) {
  expect_failure("unknown flag --learning-rate", "--learning-rate 1");
}

TEST_F(BadInputs, SeqLenBeyondContext) {
  expect_failure("--seq-len: 100 is out of range [2, 64]", "--seq-len 100");
}

TEST_F(BadInputs, PredictedMemoryAboveTheLimit) {
  expect_failure("but the memory limit is 1.00 KiB", "--memory-limit 1K");
}

TEST_F(BadInputs, Bf16ProductsWithoutBf16Weights) {
  expect_failure("--bf16-gemm on needs --dtype bf16", "--bf16-gemm on --dtype fp32");
}

TEST_F(BadInputs, ActivationDtypeNotAChoice) {
  expect_failure("--activation-dtype: \"fp8\" is not one of fp32, bf16, fp16",
                 "--activation-dtype fp8");
}

TEST_F(BadInputs, DeviceNotAChoice) {
  expect_failure("--device: unknown device \"tpu\" (cpu, cuda, cuda:N)", "--device tpu");
  expect_failure("expected cuda or cuda:N", "--device cuda:first");
}

// On a machine without a GPU (CI), --device cuda is a one-line error before anything is read or
// written, with or without CUDA in the build; LoRA on a GPU is refused by the config check first.
TEST_F(BadInputs, DeviceCudaWithoutAGpuIsRefusedUpFront) {
  try {
    make_backend({.device = "cuda"});
    GTEST_SKIP() << "this machine has a usable GPU";
  } catch (const Error&) {
  }
  expect_failure("use --device cpu", "--device cuda");
  expect_failure("LoRA runs on the CPU only so far", "--device cuda --lora-rank 4");
}

TEST_F(BadInputs, CheckpointingNotAChoice) {
  expect_failure("auto", "--checkpointing sometimes");
}

TEST_F(BadInputs, OutputFolderNotEmpty) {
  fs::create_directories(dir_ / "out");
  spit(dir_ / "out" / "keep.txt", "user data");
  const Result r = run("train --model " + model_.string() + " --data " + data_.string() +
                       " --out " + (dir_ / "out").string() + " --steps 1");
  EXPECT_EQ(r.signal, 0) << r.output;
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("not an empty folder"), std::string::npos) << r.output;
  EXPECT_EQ(slurp(dir_ / "out" / "keep.txt"), "user data");
}

// What the end of a run needs is checked before the weights are read: here the weights are
// garbage, so an error about the output proves the output was checked first.
TEST_F(BadInputs, UnwritableOutputIsRefusedBeforeTheWeights) {
  spit(model_ / "model.safetensors", "not a safetensors file");
  const Result r = run("train --model " + model_.string() + " --data " + data_.string() +
                       " --out /proc/lomo_no_such_place/out --steps 1");
  EXPECT_EQ(r.signal, 0) << r.output;
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("/proc/lomo_no_such_place/out"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("safetensors"), std::string::npos) << "weights read first:\n" << r.output;
}

TEST_F(BadInputs, GgufOutputThatCannotBeWrittenIsRefusedBeforeTraining) {
  // The fixture has llama3 RoPE scaling, which the GGUF writer does not support yet.
  spit(model_ / "model.safetensors", "not a safetensors file");
  expect_failure("GGUF export of llama3 RoPE scaling", "--out-format gguf");
}

TEST_F(BadInputs, FullDiskIsRefusedBeforeTraining) {
  const fs::path small = dir_ / "small";
  fs::create_directories(small);
  if (std::system(("mount -t tmpfs -o size=1M tmpfs " + small.string() + " 2>/dev/null").c_str()) !=
      0) {
    GTEST_SKIP() << "cannot mount a 1 MiB tmpfs here (needs root)";
  }
  const Result r = run("train --model " + model_.string() + " --data " + data_.string() +
                       " --out " + (small / "out").string() + " --steps 1");
  const bool nothing_written = fs::is_empty(small);
  std::system(("umount " + small.string()).c_str());
  EXPECT_EQ(r.signal, 0) << r.output;
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("the output needs about"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("step 1/1"), std::string::npos) << "trained before refusing:\n"
                                                           << r.output;
  EXPECT_TRUE(nothing_written);
}

// Flags that cannot act in the run are refused, naming the conflict, not silently ignored.
TEST_F(BadInputs, FlagsThatCannotActAreRefused) {
  expect_failure("--gguf-type has no effect here", "--gguf-type q8_0");
  expect_failure("--rounding has no effect here", "--rounding nearest");
  expect_failure("--rounding has no effect here", "--rounding nearest --dtype fp16");
  expect_failure("--loss-scale-init has no effect here", "--loss-scale-init 1024 --dtype bf16");
  expect_failure("--loss-scale-window has no effect here", "--loss-scale-window 10");
  expect_failure("--normalize has no effect here", "--normalize tokens");
  expect_failure("--eval-every has no effect here", "--eval-every 2");
  expect_failure("--fused-gemm-update has no effect here", "--optimizer adamw --fused-gemm-update on");
  expect_failure("--fused-gemm-update has no effect here", "--optimizer adalomo --fused-gemm-update off");
  // fp32 master weights are not implemented: refused with the flags, as lomo memory refuses it.
  expect_failure("needs fp32 master weights", "--optimizer adamw --dtype bf16");
  expect_failure("needs fp32 master weights", "--optimizer sgd --dtype fp16");
}

TEST_F(BadInputs, DivergenceStopsWithoutOutput) {
  // A learning rate this large overflows within a few steps: the run must stop naming the step
  // and the tensor, and write nothing.
  spit(data_, "{\"input_ids\": [1, 2, 3, 4, 5, 6, 7, 8]}\n");
  expect_failure("step 4: the loss is nan; training stopped before any update",
                 "--lr 1e6 --lr-schedule constant", "--steps 5");
}

}  // namespace
}  // namespace lomo
