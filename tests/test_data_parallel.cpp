// Data parallelism (docs/distributed.md): the rank shares of a batch, the launch environment, the
// flag rules, and — with MPI — real runs under mpirun against one process with the same global
// batch, the replica check, and a rank killed mid-run.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "dist/batch_share.h"
#include "dist/communicator.h"
#include "dist/launch.h"
#include "far_backend.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "train/run_config.h"
#include "train/training_run.h"

namespace lomo {
namespace {

namespace fs = std::filesystem;

TEST(BatchShare, EveryRankSomeAndTheBatchExactlyOnce) {
  for (int64_t batch = 1; batch <= 11; ++batch) {
    for (int ranks = 1; ranks <= std::min<int64_t>(batch, 5); ++ranks) {
      int64_t next = 0, most = 0, least = batch;
      for (int r = 0; r < ranks; ++r) {
        const Share s = batch_share(batch, r, ranks);
        EXPECT_EQ(s.begin, next) << "batch " << batch << ", rank " << r << " of " << ranks;
        next = s.begin + s.count;
        most = std::max(most, s.count);
        least = std::min(least, s.count);
      }
      EXPECT_EQ(next, batch) << "batch " << batch << ", " << ranks << " ranks";
      EXPECT_GE(least, 1);
      EXPECT_LE(most - least, 1);
    }
  }
  EXPECT_EQ(batch_share(5, 0, 2).count, 3);  // the first B mod N ranks take one more
  EXPECT_EQ(batch_share(5, 1, 2).count, 2);
}

LaunchInfo launch_of(const std::map<std::string, std::string>& vars) {
  return read_launch([&](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(Launch, ReadsMpirunsAndTorchrunsVariables) {
  EXPECT_EQ(launch_of({}).launcher, Launcher::Alone);
  const LaunchInfo o = launch_of({{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                                  {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                                  {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
  EXPECT_EQ(o.launcher, Launcher::Mpi);
  EXPECT_EQ(o.rank, 2);
  EXPECT_EQ(o.size, 4);
  EXPECT_EQ(o.local_rank, 0);
  EXPECT_EQ(o.local_size, 2);
  const LaunchInfo h = launch_of({{"PMI_RANK", "1"}, {"PMI_SIZE", "3"}});
  EXPECT_EQ(h.launcher, Launcher::Mpi);
  EXPECT_EQ(h.rank, 1);
  EXPECT_EQ(h.local_size, 3);  // unknown: as if every rank shared this machine
  const LaunchInfo t = launch_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"},
                                  {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}});
  EXPECT_EQ(t.launcher, Launcher::TorchStyle);
  EXPECT_EQ(t.size, 2);
}

TEST(Launch, BadValuesNameTheVariable) {
  auto message = [](const std::map<std::string, std::string>& vars) {
    try {
      launch_of(vars);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_RANK", "2"}})
                .find("OMPI_COMM_WORLD_RANK=\"2\""),
            std::string::npos);
  EXPECT_NE(message({{"WORLD_SIZE", "two"}, {"RANK", "0"}}).find("WORLD_SIZE=\"two\""),
            std::string::npos);
  EXPECT_NE(message({{"WORLD_SIZE", "2"}}).find("RANK is not"), std::string::npos);
}

std::string config_error(const RunConfig& r) {
  try {
    check_run_config(r);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(DataParallelConfig, RefusesWhatCannotRun) {
  RunConfig r;
  r.ranks = 2;
  EXPECT_NE(config_error(r).find("give --parallel dp"), std::string::npos);
  r.parallel = ParallelMode::Dp;
  EXPECT_EQ(config_error(r), "no error");
  r.batch_size = 1;
  EXPECT_NE(config_error(r).find("--batch-size ≥ 2"), std::string::npos);
  r.batch_size = 4;
  r.lora_rank = 8;
  EXPECT_NE(config_error(r).find("LoRA"), std::string::npos);
  r.lora_rank = 0;
  r.parallel = parse_parallel_mode("shard");
  EXPECT_EQ(config_error(r), "no error");
  r.optimizer = OptimizerKind::AdaLomo;
  EXPECT_EQ(config_error(r), "no error");
  r.optimizer = OptimizerKind::AdamW;
  EXPECT_NE(config_error(r).find("--optimizer lomo or adalomo"), std::string::npos);
  r.optimizer = OptimizerKind::Lomo;
  r.lora_rank = 8;
  EXPECT_NE(config_error(r).find("--parallel shard with LoRA"), std::string::npos);
  try {
    parse_parallel_mode("zero3");
    ADD_FAILURE() << "--parallel zero3 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("none, dp, shard"), std::string::npos);
  }
  RunConfig s;
  s.parallel = ParallelMode::Dp;
  s.ranks = 3;
  s.batch_size = 8;
  EXPECT_EQ(s.rank_batch(), 3);  // the largest share plans a rank's memory
}

// A small JSONL of token ids below every fixture's vocabulary, of varied lengths.
std::string write_data(const fs::path& dir, int lines) {
  const std::string path = (dir / "data.jsonl").string();
  std::ofstream d(path);
  for (int line = 0; line < lines; ++line) {
    d << "{\"input_ids\": [";
    for (int t = 0; t < 4 + (line * 7) % 15; ++t) d << (t ? ", " : "") << (line * 31 + t * 17) % 90;
    d << "]}\n";
  }
  return path;
}

// One in-process `lomo train` of `c` into dir/name (output to /dev/null); the saved model's bytes.
std::string train_in_process(RunConfig c, const fs::path& dir, const std::string& name) {
  c.out_path = (dir / name).string();
  std::FILE* sink = std::fopen("/dev/null", "w");
  {
    TrainingRun t(c, sink);
    t.prepare();
    t.load();
    t.train();
    t.save();
  }
  std::fclose(sink);
  return test::read_file((dir / name / "model.safetensors").string());
}

TEST(ShardedOneRank, EqualsTheRunWithoutTheZeroBufferUpdateBitForBit) {
  // Alone, --parallel shard cuts every tensor into one shard (padded to 16 elements), gathers
  // each layer from it and "reduce-scatters" over one rank: the arithmetic of the buffered LOMO
  // run. The tied model holds its embedding's gradient; bf16 rounds each element by its index in
  // the whole tensor, which a shard's offset must keep.
  const fs::path dir = test::temp_dir("shard_one_rank");
  for (const std::string fixture : {"llama_gqa", "smollm_tied"}) {
    for (const StorageDtype dtype : {StorageDtype::F32, StorageDtype::BF16, StorageDtype::F16}) {
    for (const OptimizerKind optimizer : {OptimizerKind::Lomo, OptimizerKind::AdaLomo}) {
      SCOPED_TRACE(fixture + " " + storage_dtype_name(dtype) + " " + optimizer_name(optimizer));
      RunConfig r;
      r.model_path = test::fixture_dir(fixture) + "/model";
      r.data_path = write_data(dir, 12);
      r.batch_size = 3;
      r.steps = 3;
      r.threads = 1;
      r.memory_limit = 0;
      r.dtype = dtype;
      r.optimizer = optimizer;
      r.clip_grad_norm = 1.0f;
      auto train = [&](const RunConfig& c, const std::string& name) {
        const std::string bytes = train_in_process(c, dir, name);
        fs::remove_all(dir / name);
        return bytes;
      };
      RunConfig off = r;
      off.fused_gemm_update = false;
      RunConfig shard = r;
      shard.parallel = ParallelMode::Shard;
      const std::string a = train(off, "off"), b = train(shard, "shard");
      ASSERT_FALSE(a.empty());
      EXPECT_TRUE(a == b) << "the sharded run's model differs";
    }
    }
  }
  fs::remove_all(dir);
}

TEST(DataParallelOneRank, EqualsTheRunWithoutTheZeroBufferUpdateBitForBit) {
  // Alone, --parallel dp sums over one rank (a no-op) and materialises every gradient: the run
  // --fused-gemm-update off makes. Any other difference (the loss divisor, the batch, the sink
  // order) would change bits.
  const fs::path dir = test::temp_dir("dp_one_rank");
  RunConfig r;
  r.model_path = test::fixture_dir("llama_gqa") + "/model";
  r.data_path = write_data(dir, 12);
  r.batch_size = 3;
  r.steps = 3;
  r.threads = 1;
  r.memory_limit = 0;
  auto train = [&](const RunConfig& c, const std::string& name) {
    return train_in_process(c, dir, name);
  };
  RunConfig off = r;
  off.fused_gemm_update = false;
  RunConfig dp = r;
  dp.parallel = ParallelMode::Dp;
  const std::string a = train(off, "off"), b = train(dp, "dp"), fused = train(r, "fused");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, fused) << "the zero-buffer update rounds differently; if not, this test proves "
                         "less than it says";
  fs::remove_all(dir);
}

TEST(LocalCommunicator, CopiesThroughTheBackendItIsGiven) {
  // A run alone on a GPU (without NCCL) gathers and scatters shards in the GPU's memory: the
  // copies must go through the backend. The far backend's memory faults on any host touch.
  test::FarBackend far;
  MemoryTracker tracker;
  Buffer a(far.allocator(), tracker, MemCategory::Parameters, 64 * sizeof(float));
  Buffer b(far.allocator(), tracker, MemCategory::Parameters, 64 * sizeof(float));
  Buffer c(far.allocator(), tracker, MemCategory::Parameters, 64 * sizeof(float));
  std::vector<float> x(64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.5f * static_cast<float>(i);
  far.copy_to_device(a.f32(), x.data(), 64 * sizeof(float));
  LocalCommunicator comm(&far);
  comm.all_gather(a.f32(), b.f32(), 64);
  comm.reduce_scatter_sum(b.f32(), c.f32(), 64);
  std::vector<float> y(64);
  far.copy_to_host(y.data(), c.f32(), 64 * sizeof(float));
  EXPECT_EQ(y, x);
}

TEST(ShardedMemory, PaperSixtyFiveBOnEightRanksFitsTwentyFourGigabytes) {
  // Acceptance 3 of issue 16: LLaMA-65B, fp16, seq 1024, one sequence per rank, checkpointing,
  // 8 sharded ranks: the planner's per-rank peak, printed beside the paper's 19.18 GB. The RTX
  // 3090's 24 GB are 24 GiB; with fp16 block inputs the plan is under 24·10⁹ bytes too.
  for (const std::string act : {"fp32", "fp16"}) {
    SCOPED_TRACE(act);
    const std::string cmd = std::string(LOMO_BINARY) + " memory --config " + LOMO_SOURCE_DIR +
                            "/configs/llama-65b.json --dtype fp16 --activation-dtype " + act +
                            " --seq-len 1024 --batch-size 8 --parallel shard --world-size 8 "
                            "--checkpointing on --memory-limit 0";
    const test::CommandResult text = test::run_command(cmd + " 2>&1");
    ASSERT_EQ(text.status, 0) << text.output;
    EXPECT_NE(text.output.find("19.18 GB per GPU"), std::string::npos) << text.output;
    const test::CommandResult json = test::run_command(cmd + " --json 2>&1");
    ASSERT_EQ(json.status, 0) << json.output;
    const auto total = nlohmann::json::parse(json.output)["total"].get<double>();
    EXPECT_LT(total, 24.0 * 1024 * 1024 * 1024);
    if (act == "fp16") {
      EXPECT_LT(total, 24e9);
    }
    EXPECT_GT(total, 19.18e9 * 0.8) << "far below the paper's figure: a term is missing";
    std::printf("  65B, 8 sharded ranks, %s block inputs: %.2f GB per rank (the paper: 19.18)\n",
                act.c_str(), total / 1e9);
  }
  // --measure needs the ranks, which one process does not have: refused with the way to measure.
  const test::CommandResult m = test::run_command(
      std::string(LOMO_BINARY) + " memory --model " + test::fixture_dir("llama_gqa") +
      "/model --parallel shard --world-size 2 --measure 2>&1");
  EXPECT_NE(m.status, 0);
  EXPECT_EQ(m.signal, 0);
  EXPECT_NE(m.output.find("mpirun -np N lomo train"), std::string::npos) << m.output;
}

#ifdef LOMO_MPIEXEC

// mpirun as CI runs it: as root, more ranks than cores.
std::string mpirun(int ranks) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 " +
         std::string(LOMO_MPIEXEC) + " -np " + std::to_string(ranks) + " --bind-to none ";
}

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    data_ = write_data(dir_, 24);
  }
  void TearDown() override { fs::remove_all(dir_); }

  struct Run {
    test::CommandResult result;
    std::vector<double> losses;       // by step, from the JSONL log
    std::vector<double> grad_norms;   // by step, with --clip-grad-norm
    std::map<std::string, std::vector<float>> tensors;  // the saved model
    std::map<std::string, std::vector<int64_t>> shapes;
    std::string bytes;        // model.safetensors
    nlohmann::json memory;    // memory.json: rank 0's tracked peaks
  };

  // `lomo train` on `fixture` for 3 steps of batch 4, alone (ranks 0) or under mpirun.
  Run train(const std::string& fixture, const std::string& flags, int ranks,
            const std::string& name, const std::string& parallel = "dp") {
    const std::string out = (dir_ / name).string();
    const std::string cmd = (ranks > 0 ? mpirun(ranks) : std::string()) + LOMO_BINARY +
                            " train --model " + test::fixture_dir(fixture) + "/model --data " +
                            data_ + " --out " + out + " --log " + out + ".jsonl" +
                            " --batch-size 4 --steps 3 --threads 1 --lr-schedule constant "
                            "--warmup-ratio 0 --memory-limit 0 " + flags +
                            (ranks > 0 ? " --parallel " + parallel : "") + " 2>&1";
    Run r;
    r.result = test::run_command(cmd);
    if (r.result.status != 0) return r;
    std::ifstream log(out + ".jsonl");
    std::string line;
    while (std::getline(log, line)) {
      const auto j = nlohmann::json::parse(line);
      if (j.contains("loss")) r.losses.push_back(j["loss"].get<double>());
      if (j.contains("grad_norm")) r.grad_norms.push_back(j["grad_norm"].get<double>());
    }
    SafetensorsFile f(out + "/model.safetensors");
    for (const TensorInfo& t : f.tensors()) {
      r.tensors[t.name] = test::read_tensor(f, t.name);
      r.shapes[t.name] = t.shape;
    }
    r.bytes = test::read_file(out + "/model.safetensors");
    r.memory = nlohmann::json::parse(test::read_file(out + "/memory.json"));
    return r;
  }

  // Every tensor agrees between the two runs to `tol` relative to the tensor's own scale (the
  // PyTorch reference tests' measure and tolerance), and so do the losses. The runs sum their
  // gradients in different orders, and the fp32 parameters round where they differ. So that a
  // wrong sum (a rank's half of the gradient, or twice it) cannot pass, each tensor must also have
  // moved by more than 20 × tol: half its move missing would be 10 × tol. Returns the worst error.
  double expect_same_training(const Run& one, const Run& dp, const std::string& fixture,
                              double tol) {
    SafetensorsFile init(test::fixture_dir(fixture) + "/model/model.safetensors");
    double worst = 0;
    for (const auto& [name, a] : one.tensors) {
      const auto it = dp.tensors.find(name);
      if (it == dp.tensors.end()) {
        ADD_FAILURE() << "the data-parallel model lacks " << name;
        continue;
      }
      const double e = test::rel_inf_error(it->second.data(), a.data(), a.size());
      const std::vector<float> w0 = test::read_tensor(init, name);
      const double moved = test::rel_inf_error(a.data(), w0.data(), a.size());
      worst = std::max(worst, e);
      EXPECT_LE(e, tol) << name;
      EXPECT_GT(moved, 20 * tol) << name << " hardly moved: the comparison would prove little";
    }
    EXPECT_EQ(one.losses.size(), dp.losses.size());
    for (size_t s = 0; s < std::min(one.losses.size(), dp.losses.size()); ++s) {
      EXPECT_NEAR(dp.losses[s], one.losses[s], tol * std::abs(one.losses[s])) << "step " << s + 1;
    }
    return worst;
  }

  fs::path dir_;
  std::string data_;
};

TEST_F(DataParallel, TwoAndFourRanksEqualOneProcessWithAndWithoutClipping) {
  for (const std::string clip : {"", "--clip-grad-norm 0.5"}) {
    const std::string flags = "--lr 0.3 " + clip;
    const Run one = train("llama_gqa", flags, 0, "one" + std::to_string(clip.size()));
    ASSERT_EQ(one.result.status, 0) << one.result.output;
    if (!clip.empty()) {  // the clipping acts: every step's norm is above the threshold
      ASSERT_EQ(one.grad_norms.size(), 3u);
      for (double n : one.grad_norms) EXPECT_GT(n, 0.5);
    }
    for (int ranks : {2, 4}) {
      SCOPED_TRACE(std::to_string(ranks) + " ranks " + clip);
      const Run dp = train("llama_gqa", flags, ranks,
                           "dp" + std::to_string(ranks) + "_" + std::to_string(clip.size()));
      ASSERT_EQ(dp.result.status, 0) << dp.result.output;
      EXPECT_NE(dp.result.output.find("replicas identical"), std::string::npos) << dp.result.output;
      const double worst = expect_same_training(one, dp, "llama_gqa", 1e-5);
      std::printf("  %d ranks%s: worst parameter error %.2e\n", ranks,
                  clip.empty() ? "" : " (clipped)", worst);
    }
  }
}

TEST_F(DataParallel, OtherOptimizersAndModels) {
  // AdamW's stored gradients on the tied model; AdaLomo with biases on 3 ranks (shares 2, 1, 1).
  struct Case {
    std::string fixture, flags;
    int ranks;
  };
  for (const Case& c : {Case{"smollm_tied", "--optimizer adamw --lr 3e-3", 2},
                        Case{"qwen2_bias", "--optimizer adalomo --lr 3e-3", 3}}) {
    SCOPED_TRACE(c.fixture + " " + c.flags);
    const Run one = train(c.fixture, c.flags, 0, c.fixture + "_one");
    ASSERT_EQ(one.result.status, 0) << one.result.output;
    const Run dp = train(c.fixture, c.flags, c.ranks, c.fixture + "_dp");
    ASSERT_EQ(dp.result.status, 0) << dp.result.output;
    const double worst = expect_same_training(one, dp, c.fixture, 1e-5);
    std::printf("  %s, %d ranks: worst parameter error %.2e\n",
                c.flags.c_str(), c.ranks, worst);
  }
}

TEST_F(DataParallel, Bf16StochasticRoundingLeavesIdenticalReplicas) {
  // Each rank rounds its own copy of every update: the same summed gradient and the same
  // (seed, step, tensor, element) key give the same bits, which the run checks by hash at the end.
  const Run dp = train("llama_gqa", "--dtype bf16", 2, "bf16");
  ASSERT_EQ(dp.result.status, 0) << dp.result.output;
  EXPECT_NE(dp.result.output.find("ranks   2 replicas identical after training"),
            std::string::npos)
      << dp.result.output;
}

TEST_F(DataParallel, SeveralRanksWithoutParallelAreRefusedBeforeAnyWork) {
  const test::CommandResult r = test::run_command(
      mpirun(2) + LOMO_BINARY + " train --model " + test::fixture_dir("llama_gqa") +
      "/model --data " + data_ + " --out " + (dir_ / "x").string() + " 2>&1");
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.signal, 0);
  EXPECT_NE(r.output.find("give --parallel dp"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "x"));
}

TEST_F(DataParallel, ARankKilledMidRunEndsEveryRankWithTheCause) {
  // Rank 1 is killed (SIGKILL: no chance to say anything) while the ranks are training; mpirun
  // must end rank 0, which would otherwise wait in the next collective forever, and say what
  // happened. Data parallel and sharded (where rank 0 may be waiting in a gather).
  for (const std::string parallel : {"dp", "shard"}) {
    SCOPED_TRACE(parallel);
    const std::string out = (dir_ / ("run_" + parallel)).string();
    const std::string log = (dir_ / ("train_" + parallel + ".out")).string();
    const std::string cmd =
        "(" + mpirun(2) + LOMO_BINARY + " train --model " + test::fixture_dir("llama_gqa") +
        "/model --data " + data_ + " --out " + out +
        " --batch-size 4 --steps 1000000 --threads 1 --parallel " + parallel + " > " + log +
        " 2>&1 & pid=$!; "
        "for i in $(seq 1200); do grep -q 'step 3/' " + log + " 2>/dev/null && break; "
        "sleep 0.05; done; "
        "for p in $(pgrep -f -- '[-]-out " + out + " '); do "
        "  if tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1; "
        "then kill -9 $p; fi; done; "
        "t0=$(date +%s%N); wait $pid; rc=$?; t1=$(date +%s%N); "
        "echo \"exit=$rc ms=$(( (t1 - t0) / 1000000 ))\"); cat " + log;
    const test::CommandResult r = test::run_command(cmd + " 2>&1");
    const size_t at = r.output.find("exit=");
    ASSERT_NE(at, std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("exit=0 "), std::string::npos) << r.output;
    const double seconds = std::stod(r.output.substr(r.output.find("ms=") + 3)) / 1000;
    EXPECT_LT(seconds, 20.0) << r.output;
    EXPECT_NE(r.output.find("rank 1"), std::string::npos) << r.output;
    EXPECT_EQ(test::run_command("pgrep -f -- '[-]-out " + out + " '").output, "")
        << "a rank is still running";
    EXPECT_FALSE(fs::exists(out + "/model.safetensors")) << "a failed run saved a model";
    std::printf("  %s: rank 1 killed, every rank ended %.1f s later\n", parallel.c_str(),
                seconds);
  }
}

TEST_F(DataParallel, ShardedEqualsDataParallelWithAndWithoutClipping) {
  // The same global batches, the same sums: reduce-scatter then each rank's update of its shard
  // against all-reduce then every rank's update of everything. Two ranks add two numbers, in
  // either order the same bits; four may associate their sums differently.
  for (const std::string clip : {"", "--clip-grad-norm 0.5"}) {
    const std::string flags = "--lr 0.3 " + clip;
    for (int ranks : {2, 4}) {
      SCOPED_TRACE(std::to_string(ranks) + " ranks " + clip);
      const std::string tag = std::to_string(ranks) + "_" + std::to_string(clip.size());
      const Run dp = train("llama_gqa", flags, ranks, "dp" + tag);
      ASSERT_EQ(dp.result.status, 0) << dp.result.output;
      const Run shard = train("llama_gqa", flags, ranks, "shard" + tag, "shard");
      ASSERT_EQ(shard.result.status, 0) << shard.result.output;
      EXPECT_NE(shard.result.output.find("gathered models identical after training"),
                std::string::npos)
          << shard.result.output;
      const double worst = expect_same_training(dp, shard, "llama_gqa", 1e-5);
      if (ranks == 2) {
        EXPECT_TRUE(dp.bytes == shard.bytes) << "two ranks: not bit-identical";
      }
      std::printf("  %d ranks%s: sharded against data parallel, worst parameter error %.2e%s\n",
                  ranks, clip.empty() ? "" : " (clipped)", worst,
                  dp.bytes == shard.bytes ? " (bit-identical)" : "");
    }
  }
}

TEST_F(DataParallel, ShardedTiedBf16AndFp16) {
  // The tied embedding's gradient is held whole from the LM head to the lookup, then
  // reduce-scattered; bf16 shards round each element by its index in the whole tensor, so the
  // sharded run's bits are data parallelism's; so are fp16's with its loss scaling.
  const Run dp = train("smollm_tied", "--lr 3e-3", 2, "tied_dp");
  ASSERT_EQ(dp.result.status, 0) << dp.result.output;
  const Run shard = train("smollm_tied", "--lr 3e-3", 2, "tied_shard", "shard");
  ASSERT_EQ(shard.result.status, 0) << shard.result.output;
  expect_same_training(dp, shard, "smollm_tied", 1e-5);
  EXPECT_TRUE(dp.bytes == shard.bytes);
  const Run dp16 = train("llama_gqa", "--dtype bf16", 2, "bf16_dp");
  ASSERT_EQ(dp16.result.status, 0) << dp16.result.output;
  const Run shard16 = train("llama_gqa", "--dtype bf16", 2, "bf16_shard", "shard");
  ASSERT_EQ(shard16.result.status, 0) << shard16.result.output;
  EXPECT_TRUE(dp16.bytes == shard16.bytes) << "bf16 with stochastic rounding: not bit-identical";
  size_t moved = 0;
  SafetensorsFile init(test::fixture_dir("llama_gqa") + "/model/model.safetensors");
  for (const auto& [name, w] : shard16.tensors) {
    const std::vector<float> w0 = test::read_tensor(init, name);
    for (size_t i = 0; i < w.size(); ++i) moved += w[i] != w0[i];
  }
  EXPECT_GT(moved, 1000u) << "bf16 training hardly changed the weights: the comparison is weak";
  // fp16: the overflow check's pass all-reduces whole gradients, the update reduce-scatters.
  const Run dp_f16 = train("llama_gqa", "--dtype fp16 --lr 0.1", 2, "f16_dp");
  ASSERT_EQ(dp_f16.result.status, 0) << dp_f16.result.output;
  const Run shard_f16 = train("llama_gqa", "--dtype fp16 --lr 0.1", 2, "f16_shard", "shard");
  ASSERT_EQ(shard_f16.result.status, 0) << shard_f16.result.output;
  EXPECT_TRUE(dp_f16.bytes == shard_f16.bytes) << "fp16: not bit-identical";
}

TEST_F(DataParallel, ShardedAdaLomoEqualsDataParallelBitForBit) {
  // AdaLomo's statistics need the whole gradient: the sharded ranks all-reduce it as data
  // parallelism does and update their gathered copies, so the bits are the same on any number of
  // ranks. Biases and 3 ranks (shares 2, 1, 1); the tied model on 2, clipped by norm.
  struct Case {
    std::string fixture, flags;
    int ranks;
  };
  for (const Case& c : {Case{"qwen2_bias", "--optimizer adalomo --lr 3e-3", 3},
                        Case{"smollm_tied", "--optimizer adalomo --lr 3e-3 --clip-grad-norm 0.5 "
                                            "--dtype bf16", 2}}) {
    SCOPED_TRACE(c.fixture + " " + c.flags);
    const Run dp = train(c.fixture, c.flags, c.ranks, c.fixture + "_dp");
    ASSERT_EQ(dp.result.status, 0) << dp.result.output;
    const Run shard = train(c.fixture, c.flags, c.ranks, c.fixture + "_shard", "shard");
    ASSERT_EQ(shard.result.status, 0) << shard.result.output;
    const double worst = expect_same_training(dp, shard, c.fixture, 1e-5);
    EXPECT_TRUE(dp.bytes == shard.bytes) << "worst parameter error " << worst;
  }
}

TEST_F(DataParallel, ShardedCheckpointResumesInOneProcess) {
  // A sharded run's checkpoint holds the whole model (gathered to save), so it resumes at any
  // number of ranks: two sharded ranks save at step 2; one process resumes for step 3 and ends
  // where the uninterrupted sharded run ends.
  const std::string ckpt = (dir_ / "ckpt").string();
  const Run whole = train("llama_gqa", "--lr 0.3 --save-every 2 --checkpoint-dir " + ckpt, 2,
                          "sharded", "shard");
  ASSERT_EQ(whole.result.status, 0) << whole.result.output;
  ASSERT_TRUE(fs::exists(ckpt)) << whole.result.output;
  const Run resumed = train("llama_gqa", "--lr 0.3 --resume " + ckpt, 0, "resumed");
  ASSERT_EQ(resumed.result.status, 0) << resumed.result.output;
  EXPECT_NE(resumed.result.output.find("resume"), std::string::npos) << resumed.result.output;
  Run last = whole;  // the resumed run logs step 3 only
  ASSERT_EQ(last.losses.size(), 3u);
  last.losses.erase(last.losses.begin(), last.losses.begin() + 2);
  expect_same_training(last, resumed, "llama_gqa", 1e-5);
}

TEST_F(DataParallel, ShardedRankHoldsItsShardsOneGatheredLayerAndTheRest) {
  // Acceptance 2 of issue 16, as a formula over the saved model's tensors (N ranks, tensor t of
  // n_t elements and e_t bytes each, s_t = ⌈n_t / N⌉ rounded up to 16):
  //   parameters = Σ_t s_t·e_t                      every rank's shards (≈ the model / N)
  //              + Σ_{t outside blocks} N·s_t·e_t   embedding, final norm, head, gathered
  //              + max_l Σ_{t in block l} N·s_t·e_t  one gathered block
  //   gradients  = 4·max_t N·s_t + 4·max_t s_t      one whole gradient (padded), one shard's
  // and the memory planner predicts the same, with every other category, to the byte.
  // AdaLomo updates the gathered whole tensor: no shard's gradient buffer, and its statistics
  // (rows + cols per matrix, replicated) as optimizer states.
  for (const std::string optimizer : {"lomo", "adalomo"}) {
  for (const std::string dtype : {"fp32", "bf16"}) {
    SCOPED_TRACE(dtype + " " + optimizer);
    const int N = 2;
    const std::string flags = "--dtype " + dtype + " --optimizer " + optimizer;
    const std::string tag = dtype + "_" + optimizer;
    const Run shard = train("llama_gqa", flags, N, "mem_" + tag, "shard");
    ASSERT_EQ(shard.result.status, 0) << shard.result.output;
    const Run dp = train("llama_gqa", flags, N, "memdp_" + tag);
    ASSERT_EQ(dp.result.status, 0) << dp.result.output;
    size_t shards = 0, outer = 0, whole = 0, largest = 0, one = 0;
    std::map<int, size_t> block;
    for (const auto& [name, shape] : shard.shapes) {
      int64_t n = 1;
      for (int64_t x : shape) n *= x;
      const size_t e = shape.size() == 2 && dtype == "bf16" ? 2 : 4;
      const auto s = static_cast<size_t>(((n + N - 1) / N + 15) / 16 * 16);
      shards += s * e;
      whole += static_cast<size_t>(n) * e;
      int layer = -1;
      if (std::sscanf(name.c_str(), "model.layers.%d.", &layer) == 1) {
        block[layer] += N * s * e;
      } else {
        outer += N * s * e;
      }
      largest = std::max(largest, N * s);
      one = std::max(one, s);
    }
    size_t max_block = 0;
    for (const auto& [l, b] : block) max_block = std::max(max_block, b);
    const size_t params = shards + outer + max_block;
    EXPECT_EQ(shard.memory["parameters"].get<size_t>(), params);
    EXPECT_EQ(shard.memory["gradients"].get<size_t>(),
              4 * (largest + (optimizer == "lomo" ? one : 0)));
    // Against data parallelism's replica: the whole model's parameters.
    EXPECT_EQ(dp.memory["parameters"].get<size_t>(), whole);
    EXPECT_LT(shards, whole / N + 16 * 4 * shard.shapes.size());
    // The planner, from the config alone.
    const test::CommandResult plan = test::run_command(
        std::string(LOMO_BINARY) + " memory --model " + test::fixture_dir("llama_gqa") +
        "/model --batch-size 4 --seq-len 18 --memory-limit 0 " + flags +
        " --parallel shard --world-size 2 --json 2>&1");
    ASSERT_EQ(plan.status, 0) << plan.output;
    const auto p = nlohmann::json::parse(plan.output);
    // (Activations and workspace follow each batch's longest sequence, which the planner takes
    // as --seq-len; the planner sweep holds them to the tracked peaks.)
    for (const char* c : {"parameters", "gradients", "optimizer_states"}) {
      EXPECT_EQ(p[c].get<size_t>(), shard.memory[c].get<size_t>()) << c;
    }
    std::printf("  %s, %s, 2 ranks: parameters %zu B sharded (shards %zu + gathered outer %zu + "
                "one block %zu) against %zu B replicated\n",
                dtype.c_str(), optimizer.c_str(), params, shards, outer, max_block, whole);
  }
  }
}

#endif  // LOMO_MPIEXEC

}  // namespace
}  // namespace lomo
