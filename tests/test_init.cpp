// `lomo init` streams the model to disk one tensor at a time: the file holds exactly the values
// init_params makes in memory (the same counter-based streams), in every storage dtype; a disk
// too small for the file is refused before anything is written.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/init.h"
#include "model/loader.h"
#include "ops/cpu/cpu_backend.h"
#include "test_run.h"
#include "test_util.h"
#include "train/memory_plan.h"

namespace lomo {
namespace {

namespace fs = std::filesystem;

int run(const std::string& args, std::string* output = nullptr) {
  const test::CommandResult r =
      test::run_command(std::string(LOMO_BINARY) + " " + args + " 2>&1");
  if (output) *output = r.output;
  return r.status;
}

TEST(Init, StreamedFileEqualsTheModelInMemory) {
  const fs::path dir = fs::temp_directory_path() / ("lomo_init_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* fixture : {"qwen2_bias", "smollm_tied"}) {
    for (StorageDtype dt : {StorageDtype::F32, StorageDtype::BF16, StorageDtype::F16}) {
      const std::string name = std::string(fixture) + "_" + storage_dtype_name(dt);
      SCOPED_TRACE(name);
      const std::string config = test::fixture_dir(fixture) + "/model/config.json";
      ASSERT_EQ(run("init --config " + config + " --seed 11 --dtype " + storage_dtype_name(dt) +
                    " --out " + (dir / name).string()),
                0);
      test::TestRun memory(load_config(config), 11, dt);
      test::TestRun file((dir / name).string(), dt);
      for (size_t i = 0; i < memory.params().all().size(); ++i) {
        const Param& a = memory.params().all()[i];
        const Param& b = file.params().all()[i];
        ASSERT_EQ(a.data.bytes(), b.data.bytes()) << a.name;
        ASSERT_EQ(std::memcmp(a.data.as<uint8_t>(), b.data.as<uint8_t>(), a.data.bytes()), 0)
            << a.name;
      }
    }
  }
  fs::remove_all(dir);
}

// --random-init's path: the weights made by the backend's own ops where the parameters live —
// here the far backend's memory, which the host cannot touch, as a GPU's — equal init_params'
// host weights bit for bit (biases, tied and untied heads; fp32, bf16 and fp16 storage).
TEST(Init, InPlaceOnDeviceMemoryEqualsTheHostInit) {
  for (const char* fixture : {"qwen2_bias", "smollm_tied", "llama_gqa"}) {
    for (StorageDtype dt : {StorageDtype::F32, StorageDtype::BF16, StorageDtype::F16}) {
      SCOPED_TRACE(std::string(fixture) + " " + storage_dtype_name(dt));
      const ModelConfig c = load_config(test::fixture_dir(fixture) + "/model/config.json");
      test::TestRun host(c, 11, dt);
      const auto far = test::make_test_backend(test::TestBackend::Far);
      MemoryTracker tracker;
      ModelParams made(c, tracker, dt, far->allocator());
      int64_t calls = 0, expect_done = 0;
      // In pieces of 37 elements (the default is 4 Mi): the host init draws each tensor whole.
      const int64_t piece = 37;
      init_params_in_place(
          c, made, 11, *far, tracker,
          [&](int64_t done, int64_t total) {  // parameters made, after each tensor
            expect_done += made.all()[static_cast<size_t>(calls++)].numel();
            EXPECT_EQ(done, expect_done);
            EXPECT_EQ(total, made.total_numel());
          },
          piece);
      EXPECT_EQ(calls, static_cast<int64_t>(made.all().size()));
      EXPECT_EQ(tracker.peak(MemCategory::Workspace, far->allocator().device()),
                dt == StorageDtype::F32 ? 0u : piece * 4)
          << "the scratch is one piece, not the largest tensor";
      EXPECT_EQ(tracker.current(MemCategory::Workspace, far->allocator().device()), 0u)
          << "the init scratch outlived init";
      for (size_t i = 0; i < made.all().size(); ++i) {
        const Param& a = host.params().all()[i];
        const Param& b = made.all()[i];
        ASSERT_EQ(a.data.bytes(), b.data.bytes()) << a.name;
        std::vector<uint8_t> bytes(b.data.bytes());
        far->copy_to_host(bytes.data(), b.data.as<uint8_t>(), bytes.size());
        ASSERT_EQ(std::memcmp(a.data.as<uint8_t>(), bytes.data(), bytes.size()), 0) << a.name;
      }
    }
  }
}

// Pieces of a tensor equal the tensor: the normal stream from any element on, init_params with
// small staging, and a safetensors folder loaded into 16-bit storage in pieces (odd sizes, so
// that pieces end mid-row).
TEST(Init, MadeAndLoadedInPiecesEqualWhole) {
  CpuBackend cpu;
  std::vector<float> whole(1000), piece(1000);
  cpu.fill_normal(whole.data(), 1000, 5, 3, 0.02, 0);
  for (int64_t b = 0; b < 1000; b += 37) {
    const int64_t n = std::min<int64_t>(37, 1000 - b);
    cpu.fill_normal(piece.data() + b, n, 5, 3, 0.02, b);
  }
  ASSERT_EQ(std::memcmp(whole.data(), piece.data(), whole.size() * 4), 0);
  cpu.fill_normal(piece.data(), 1000, 5, 3, 0.02, 1);
  EXPECT_EQ(piece[0], whole[1]);
  EXPECT_NE(piece[0], whole[0]);
  for (const char* fixture : {"qwen2_bias", "smollm_tied", "llama_gqa"}) {
    const std::string dir = test::fixture_dir(fixture) + "/model";
    const ModelConfig c = load_config(dir + "/config.json");
    for (StorageDtype dt : {StorageDtype::BF16, StorageDtype::F16}) {
      SCOPED_TRACE(std::string(fixture) + " " + storage_dtype_name(dt));
      MemoryTracker tracker;
      ModelParams a(c, tracker, dt), b(c, tracker, dt);
      init_params(c, a, 11, cpu);
      init_params(c, b, 11, cpu, 53);
      const Model loaded = load_model(dir, tracker, dt);
      const Model pieces = load_model(dir, tracker, dt, {}, 53);
      for (size_t i = 0; i < a.all().size(); ++i) {
        const Param& p = a.all()[i];
        ASSERT_EQ(std::memcmp(p.data.as<uint8_t>(), b.all()[i].data.as<uint8_t>(), p.data.bytes()),
                  0)
            << "init " << p.name;
        const Param& l = loaded.params.all()[i];
        ASSERT_EQ(std::memcmp(l.data.as<uint8_t>(), pieces.params.all()[i].data.as<uint8_t>(),
                              l.data.bytes()),
                  0)
            << "load " << l.name;
      }
    }
  }
  SafetensorsFile f(test::fixture_dir("llama_gqa") + "/model/model.safetensors");
  const TensorInfo& t = f.tensors().front();
  std::vector<float> out(static_cast<size_t>(t.numel()));
  EXPECT_THROW(f.read(t, t.numel() - 1, 2, out.data()), Error);
}

TEST(Init, TooSmallADiskIsRefusedBeforeWriting) {
  const fs::path small = fs::temp_directory_path() / ("lomo_init_small_" + std::to_string(::getpid()));
  fs::create_directories(small);
  if (std::system(("mount -t tmpfs -o size=1M tmpfs " + small.string() + " 2>/dev/null").c_str()) !=
      0) {
    fs::remove_all(small);
    GTEST_SKIP() << "cannot mount a small tmpfs here (needs root)";
  }
  std::string out;
  const int status = run("init --config " + std::string(LOMO_SOURCE_DIR) +
                             "/configs/llama-7b.json --out " + (small / "m").string(),
                         &out);
  const bool empty = fs::is_empty(small);
  std::system(("umount " + small.string()).c_str());
  fs::remove_all(small);
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("the output needs about"), std::string::npos) << out;
  EXPECT_TRUE(empty) << "something was written";
}

}  // namespace
}  // namespace lomo
