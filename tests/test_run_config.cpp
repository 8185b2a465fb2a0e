// A run is one object: `lomo train` and `lomo memory` read the same flags into the same
// RunConfig and plan through the same function, and a TrainingRun trains and saves without any
// command line.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/run_flags.h"
#include "core/error.h"
#include "model/loader.h"
#include "ops/cpu/cpu_backend.h"
#include "model/init.h"
#include "test_util.h"
#include "ops/backend.h"
#include "train/run_config.h"
#include "train/training_run.h"

namespace lomo {
namespace {

namespace fs = std::filesystem;

std::string model_dir() {
  return test::fixture_dir("llama_gqa") + "/model";
}

std::string run_cli(const std::string& args) {
  const test::CommandResult r =
      test::run_command(std::string(LOMO_BINARY) + " " + args + " 2>&1");
  EXPECT_EQ(r.status, 0) << args << "\n" << r.output;
  return r.output;
}

// flag name -> the default its --help line shows ("" when none; "(required)" when required).
// A flag's help continues on the next line when its name and value are long.
std::map<std::string, std::string> help_defaults(const std::string& help) {
  std::map<std::string, std::string> flags;
  std::istringstream in(help);
  std::string line, current;
  std::map<std::string, std::string> text;
  while (std::getline(in, line)) {
    if (line.rfind("  --", 0) == 0) {
      current = line.substr(4, line.find(' ', 4) - 4);
      text[current] = line;
    } else if (!current.empty() && line.rfind(std::string(28, ' '), 0) == 0) {
      text[current] += line;
    } else {
      current.clear();
    }
  }
  for (const auto& [name, t] : text) {
    std::string d;
    if (const auto at = t.rfind("[default: "); at != std::string::npos && t.back() == ']') {
      d = t.substr(at + 10, t.size() - at - 11);
    } else if (t.size() >= 10 && t.compare(t.size() - 10, 10, "(required)") == 0) {
      d = "(required)";
    }
    flags[name] = d;
  }
  flags.erase("help");
  return flags;
}

TEST(RunFlags, TrainAndMemoryShowTheSameDefaultForEverySharedFlag) {
  const auto train = help_defaults(run_cli("train --help"));
  const auto memory = help_defaults(run_cli("memory --help"));
  ASSERT_TRUE(train.count("lr") && train.count("data")) << "the help parser found no flags";
  std::set<std::string> shared;
  for (const auto& [name, def] : memory) {
    if (!train.count(name)) continue;
    shared.insert(name);
    EXPECT_EQ(def, train.at(name)) << "--" << name << ": memory and train show other defaults";
  }
  for (const char* f :
       {"model", "optimizer", "dtype", "batch-size", "seq-len", "checkpointing", "clip-grad-norm",
        "clip-grad-value", "memory-limit", "fused-gemm-update", "bf16-gemm", "threads"}) {
    EXPECT_TRUE(shared.count(f)) << "--" << f << " is not shared by train and memory";
  }
  // Memory's own flags: the ones that are not run flags, and --world-size, which train takes from
  // the launch (mpirun) instead.
  std::set<std::string> own;
  for (const auto& [name, def] : memory) {
    if (!train.count(name)) own.insert(name);
  }
  EXPECT_EQ(own, (std::set<std::string>{"config", "convention", "json", "measure", "world-size"}));
  EXPECT_TRUE(shared.count("parallel")) << "--parallel is not shared by train and memory";
  EXPECT_EQ(train.at("batch-size"), "4");
  EXPECT_EQ(train.at("checkpointing"), "auto");
  EXPECT_EQ(train.at("seq-len"), "min(1024, context)");
}

// argv as a command receives it: "lomo <command> flags..."
cli::Args parse(cli::RunCommand command, const std::vector<std::string>& flags) {
  cli::Args args(command == cli::RunCommand::Train ? "train" : "memory", "usage", "summary",
                 cli::run_flags(command));
  std::vector<std::string> words{"lomo", "cmd"};
  words.insert(words.end(), flags.begin(), flags.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  args.parse(static_cast<int>(argv.size()), argv.data(), 2);
  return args;
}

void expect_same_plan_input(const MemoryPlanInput& a, const MemoryPlanInput& b) {
  EXPECT_EQ(a.config.d_model, b.config.d_model);
  EXPECT_EQ(a.config.n_layer, b.config.n_layer);
  EXPECT_EQ(a.config.vocab, b.config.vocab);
  EXPECT_EQ(a.optimizer, b.optimizer);
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.batch, b.batch);
  EXPECT_EQ(a.seq, b.seq);
  EXPECT_EQ(a.checkpointing.kept, b.checkpointing.kept);
  EXPECT_EQ(a.checkpointing.recompute_head, b.checkpointing.recompute_head);
  EXPECT_EQ(a.fused_gemm_update, b.fused_gemm_update);
  EXPECT_EQ(a.clip_grad_norm, b.clip_grad_norm);
  EXPECT_EQ(a.clip_grad_value, b.clip_grad_value);
  EXPECT_EQ(a.bf16_gemm, b.bf16_gemm);
}

void expect_same_run(const RunConfig& t, const RunConfig& m) {
  // Field by field, for the message; then the whole, for a field added later.
  EXPECT_EQ(t.model_path, m.model_path);
  EXPECT_EQ(t.optimizer, m.optimizer);
  EXPECT_EQ(t.peak_lr(), m.peak_lr());
  EXPECT_EQ(t.dtype, m.dtype);
  EXPECT_EQ(t.batch_size, m.batch_size);
  EXPECT_EQ(t.seq_len, m.seq_len);
  EXPECT_EQ(t.checkpointing, m.checkpointing);
  EXPECT_EQ(t.clip_grad_norm, m.clip_grad_norm);
  EXPECT_EQ(t.clip_grad_value, m.clip_grad_value);
  EXPECT_EQ(t.memory_limit, m.memory_limit);
  EXPECT_EQ(t.fused_gemm_update, m.fused_gemm_update);
  EXPECT_EQ(t.bf16_gemm, m.bf16_gemm);
  EXPECT_EQ(t.uses_bf16_gemm(), m.uses_bf16_gemm());
  EXPECT_EQ(t.threads, m.threads);
  RunConfig t_shared = t;  // train's own required flags, which memory does not declare
  t_shared.data_path = m.data_path;
  t_shared.out_path = m.out_path;
  EXPECT_TRUE(t_shared == m) << "a field differs that the list above does not name";
}

TEST(RunFlags, TheSameArgvGivesTheSameRunAndPlanInTrainAndMemory) {
  const ModelConfig cfg = load_model_config(model_dir());
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"--model",          model_dir(), "--optimizer",         "adalomo",
       "--dtype",          "bf16",      "--batch-size",        "2",
       "--seq-len",        "16",        "--checkpointing",     "off",
       "--clip-grad-norm", "1",         "--clip-grad-value",   "0.5",
       "--memory-limit",   "1G",        "--bf16-gemm",         "off",
       "--threads",        "1"},
      {"--optimizer", "adamw", "--checkpointing", "on", "--memory-limit", "300K", "--dtype",
       "fp32"},
      {"--dtype", "fp16", "--clip-grad-value", "1", "--memory-limit", "2M"},
      {"--dtype", "bf16", "--bf16-gemm", "on", "--seq-len", "33", "--memory-limit", "0",
       "--fused-gemm-update", "off"},
  };
  for (const auto& shared : cases) {
    SCOPED_TRACE(::testing::PrintToString(shared));
    std::vector<std::string> train_argv = shared;
    for (const char* w : {"--data", "d.jsonl", "--out", "out"}) train_argv.push_back(w);
    const RunConfig t = cli::run_config_from_args(parse(cli::RunCommand::Train, train_argv));
    const RunConfig m = cli::run_config_from_args(parse(cli::RunCommand::Memory, shared));
    EXPECT_EQ(t.data_path, "d.jsonl");
    expect_same_run(t, m);
    check_run_config(t);
    check_run_config(m);
    const int64_t seq = run_seq_len(t, cfg);
    EXPECT_EQ(seq, run_seq_len(m, cfg));
    const auto backend = make_backend();
    MemoryPlanInput in_t = plan_input(t, cfg, seq, *backend);
    MemoryPlanInput in_m = plan_input(m, cfg, seq, *backend);
    const size_t limit = t.memory_limit.value_or(1ull << 30);
    in_t.checkpointing = fit_checkpointing(t.checkpointing, in_t, limit);
    in_m.checkpointing = fit_checkpointing(m.checkpointing, in_m, limit);
    expect_same_plan_input(in_t, in_m);
  }
}

TEST(RunFlags, NoFlagsGiveRunConfigsDefaults) {
  // The flag table's written defaults and RunConfig's member defaults are one set of values.
  RunConfig expected;
  expected.data_path = "d.jsonl";
  expected.out_path = "out";
  const RunConfig t = cli::run_config_from_args(
      parse(cli::RunCommand::Train, {"--data", "d.jsonl", "--out", "out"}));
  EXPECT_TRUE(t == expected);
  EXPECT_TRUE(cli::run_config_from_args(parse(cli::RunCommand::Memory, {})) == RunConfig{});
  EXPECT_EQ(expected.peak_lr(), 0.03);
  expected.optimizer = OptimizerKind::AdaLomo;
  EXPECT_EQ(expected.peak_lr(), 5e-4);
}

TEST(RunFlags, MemoryDoesNotAcceptTrainOnlyFlags) {
  EXPECT_THROW(parse(cli::RunCommand::Memory, {"--lr", "0.1"}), Error);
  EXPECT_THROW(parse(cli::RunCommand::Memory, {"--data", "d.jsonl"}), Error);
}

TEST(Args, SwitchesTakeNoValueAndValuesNeedOne) {
  cli::Args args("memory", "usage", "summary",
                 {{"json", "", "print JSON", ""}, {"batch-size", "N", "sequences", "4"}});
  std::vector<std::string> words{"lomo", "memory", "--json", "--batch-size", "2"};
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  args.parse(static_cast<int>(argv.size()), argv.data(), 2);
  EXPECT_TRUE(args.given("json"));
  EXPECT_EQ(args.integer("batch-size", 1, 8), 2);
  EXPECT_NE(args.help().find("  --json                    print JSON\n"), std::string::npos)
      << args.help();

  auto parse_words = [](std::vector<std::string> w) {
    cli::Args a("memory", "usage", "summary",
                {{"json", "", "print JSON", ""}, {"batch-size", "N", "sequences", "4"}});
    std::vector<char*> v;
    for (auto& s : w) v.push_back(s.data());
    a.parse(static_cast<int>(v.size()), v.data(), 2);
    return a;
  };
  try {
    parse_words({"lomo", "memory", "--json=yes"});
    ADD_FAILURE() << "--json=yes was accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "--json is a switch and takes no value");
  }
  try {
    parse_words({"lomo", "memory", "--json", "--batch-size"});
    ADD_FAILURE() << "--batch-size without a value was accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "--batch-size needs a value (N)");
  }
  EXPECT_TRUE(parse_words({"lomo", "memory", "--help", "--json"}).help_requested());
}

TEST(RunConfigRules, CrossFlagErrorsKeepTheirMessages) {
  RunConfig r;
  r.steps = 3;
  r.epochs = 2;
  try {
    check_run_config(r);
    ADD_FAILURE() << "--steps with --epochs was accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "give --steps or --epochs, not both");
  }
  r = RunConfig{};
  r.bf16_gemm = true;
  EXPECT_THROW(check_run_config(r), Error);
  r.dtype = StorageDtype::BF16;
  EXPECT_NO_THROW(check_run_config(r));
  r = RunConfig{};
  r.bf16_gemm = false;  // off is fine whatever the dtype
  EXPECT_NO_THROW(check_run_config(r));
  // SGD and AdamW need fp32 master weights with 16-bit storage: refused with the flags, before
  // any data or weight is read, unless only planned under the paper's convention.
  for (const OptimizerKind opt : {OptimizerKind::Sgd, OptimizerKind::AdamW}) {
    r = RunConfig{};
    r.optimizer = opt;
    r.dtype = StorageDtype::F16;
    try {
      check_run_config(r);
      ADD_FAILURE() << optimizer_name(opt) << " with fp16 was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("master weights"), std::string::npos) << e.what();
    }
    EXPECT_NO_THROW(check_run_config(r, MemoryConvention::Paper));
  }

  const ModelConfig cfg = load_model_config(model_dir());  // max_position 64
  r = RunConfig{};
  EXPECT_EQ(run_seq_len(r, cfg), 64);
  r.seq_len = 100;
  try {
    run_seq_len(r, cfg);
    ADD_FAILURE() << "--seq-len beyond the context was accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "--seq-len: 100 is out of range [2, 64]");
  }
}

class TrainingRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("lomo_run_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "data.jsonl") << "{\"input_ids\": [1, 2, 3, 4, 5]}\n"
                                          "{\"input_ids\": [7, 8, 9]}\n"
                                          "{\"input_ids\": [3, 4, 5, 6, 7, 8, 9, 10]}\n";
    config_.model_path = model_dir();
    config_.data_path = (dir_ / "data.jsonl").string();
    config_.out_path = (dir_ / "out").string();
    config_.steps = 2;
    config_.batch_size = 2;
    config_.threads = 1;
    config_.lr_schedule = LrSchedule::Constant;
    config_.log_path = (dir_ / "log.jsonl").string();
    progress_ = std::tmpfile();
  }
  void TearDown() override {
    std::fclose(progress_);
    fs::remove_all(dir_);
  }
  std::string progress() {
    std::fflush(progress_);
    std::rewind(progress_);
    std::string s;
    char buf[512];
    while (std::fgets(buf, sizeof buf, progress_)) s += buf;
    return s;
  }
  fs::path dir_;
  RunConfig config_;
  std::FILE* progress_ = nullptr;
};

TEST_F(TrainingRunTest, TrainsTwoStepsAndSavesALoadableModel) {
  TrainingRun run(config_, progress_);
  run.prepare();
  EXPECT_EQ(run.total_steps(), 2);
  EXPECT_FALSE(fs::exists(config_.out_path)) << "prepare() must not create the output";
  run.load();
  const TrainSummary& s = run.train();
  EXPECT_EQ(s.steps, 2);
  EXPECT_GT(s.tokens, 0);
  EXPECT_TRUE(std::isfinite(s.first_loss) && std::isfinite(s.last_loss));
  run.save();

  const std::string text = progress();
  for (const char* line : {"model   ",
                           "train   lomo, fp32, lr 0.03 (constant, warm-up 1 steps), 2 steps "
                           "of 2 sequences, checkpointing auto, 1 threads\n",
                           "step 1/2  loss ", "step 2/2  loss ", "done    loss ", "saved   "}) {
    EXPECT_NE(text.find(line), std::string::npos) << "no \"" << line << "\" in\n" << text;
  }
  std::ifstream log(config_.log_path);
  int lines = 0;
  for (std::string l; std::getline(log, l);) ++lines;
  EXPECT_EQ(lines, 2);

  // The saved model loads, and training changed it.
  MemoryTracker t0, t1;
  const Model before = load_model(model_dir(), t0);
  const Model after = load_model(config_.out_path, t1);
  ASSERT_EQ(before.params.all().size(), after.params.all().size());
  const Param& a = *before.params.layers[0].wq;
  const Param& b = *after.params.layers[0].wq;
  ASSERT_EQ(a.numel(), b.numel());
  double diff = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    diff = std::max(diff, std::abs(double(a.f()[i]) - b.f()[i]));
  EXPECT_GT(diff, 0) << "two steps at lr 0.03 left model.layers.0.self_attn.q_proj unchanged";
  EXPECT_TRUE(fs::exists(fs::path(config_.out_path) / "memory.json"));
}

TEST_F(TrainingRunTest, ProfileTablesThePhasesOfTheStepsAfterTheFirst) {
  config_.profile = true;
  config_.steps = 3;
  TrainingRun run(config_, progress_);
  run.prepare();
  run.load();
  run.train();
  run.save();
  const std::string text = progress();
  const size_t at = text.find("profile (mean of steps 2..3)");
  ASSERT_NE(at, std::string::npos) << text;
  // A line per phase, then "other" (the step outside every phase: never below zero, the phases
  // being timed inside the step), each with its share of the step in %: the steps of this tiny
  // model take well under a millisecond, below the table's seconds, not below its shares.
  std::istringstream lines(text.substr(at));
  std::string line;
  std::getline(lines, line);
  std::vector<double> share;
  for (int i = 0; i < 6 && std::getline(lines, line); ++i) {
    const size_t pct = line.rfind(" %");
    ASSERT_NE(pct, std::string::npos) << line;
    share.push_back(std::stod(line.substr(line.rfind(' ', pct - 1) + 1)));
  }
  ASSERT_EQ(share.size(), 6u) << text.substr(at);
  for (int i = 0; i < 5; ++i) EXPECT_GE(share[i], 0.0) << text.substr(at);
  EXPECT_GT(share[0], 0.0) << "no time in the linear layers:\n" << text.substr(at);
  EXPECT_GE(share[5], -0.05) << "phases outlast their step:\n" << text.substr(at);
}

// --random-init makes lomo init's model in the run's memory: the same weights bit for bit, so
// training it gives the very losses of training the folder lomo init writes (fp32 and bf16),
// and with --save off the run writes nothing.
TEST_F(TrainingRunTest, RandomInitTrainsAsTheFolderLomoInitWrites) {
  const ModelConfig cfg = load_model_config(model_dir());
  for (const StorageDtype dtype : {StorageDtype::F32, StorageDtype::BF16}) {
    SCOPED_TRACE(storage_dtype_name(dtype));
    const fs::path folder = dir_ / (std::string("init_") + storage_dtype_name(dtype));
    CpuBackend cpu(1);
    write_random_model(folder.string(), cfg, 7, dtype, cpu);
    config_.steps = 3;
    config_.seed = 7;
    config_.dtype = dtype;
    config_.log_path.clear();

    RunConfig from_file = config_;
    from_file.model_path = folder.string();
    from_file.out_path = (dir_ / (std::string("out_") + storage_dtype_name(dtype))).string();
    TrainingRun a(from_file, progress_);
    a.prepare();
    a.load();
    const TrainSummary sa = a.train();

    RunConfig random = config_;
    random.model_path.clear();
    random.random_config_path = (folder / "config.json").string();
    random.out_path.clear();
    random.save = false;
    const auto before = std::distance(fs::directory_iterator(dir_), fs::directory_iterator());
    TrainingRun b(random, progress_);
    b.prepare();
    b.load();
    const TrainSummary sb = b.train();
    b.save();
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), before)
        << "--save off wrote into the folder";
    EXPECT_FALSE(fs::exists(".checkpoints")) << "--save off made a checkpoint folder here";
    EXPECT_EQ(sb.steps, 3);
    EXPECT_EQ(sa.first_loss, sb.first_loss);
    EXPECT_EQ(sa.last_loss, sb.last_loss);
    EXPECT_NE(sb.first_loss, sb.last_loss) << "three steps changed nothing";
  }
  EXPECT_NE(progress().find("model   random (--random-init "), std::string::npos);
}

TEST_F(TrainingRunTest, RandomInitAndSaveOffRefuseWhatTheyCannotDo) {
  const std::string cfg_path = model_dir() + "/config.json";
  struct Case {
    std::function<void(RunConfig&)> set;
    const char* message;
  };
  const Case cases[] = {
      {[&](RunConfig& r) { r.random_config_path = cfg_path; },
       "give --model or --random-init, not both"},
      {[&](RunConfig& r) {
         r.model_path.clear();
         r.random_config_path = cfg_path;
       },
       "a random model has no tokenizer or source folder to save beside it"},
      {[&](RunConfig& r) {
         r.model_path.clear();
         r.random_config_path = (dir_ / "none.json").string();
         r.save = false;
         r.out_path.clear();
       },
       "none.json: not a file (expected a Hugging Face config.json"},
      {[&](RunConfig& r) { r.save = false; }, "--save off writes nothing: drop --out"},
      {[&](RunConfig& r) {
         r.save = false;
         r.out_path.clear();
         r.save_every = 1;
       },
       "--save off writes nothing: drop --save-every"},
      {[&](RunConfig& r) { r.out_path.clear(); }, "give --out DIR"},
      {[&](RunConfig& r) {
         r.save = false;
         r.out_path.clear();
         r.resume_path = (dir_ / "out.checkpoints").string();
       },
       "--save off with --resume"},
  };
  for (const Case& c : cases) {
    RunConfig r = config_;
    c.set(r);
    TrainingRun run(r, progress_);
    try {
      run.prepare();
      ADD_FAILURE() << "accepted; expected: " << c.message;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    }
    EXPECT_EQ(run.tracker().peak_total(), 0u) << c.message;
    EXPECT_FALSE(fs::exists(config_.out_path)) << c.message;
  }
}

TEST_F(TrainingRunTest, SaveOffRefusesTheFlagsOfWhatItDoesNotWrite) {
  for (const char* flag : {"--keep 3", "--merge", "--out-format gguf", "--gguf-type q8_0"}) {
    const test::CommandResult r = test::run_command(
        std::string(LOMO_BINARY) + " train --random-init " + model_dir() + "/config.json --data " +
        config_.data_path + " --save off " + flag + " 2>&1");
    EXPECT_NE(r.status, 0) << flag;
    const std::string name = std::string(flag).substr(0, std::string(flag).find(' '));
    EXPECT_NE(r.output.find(name + " has no effect here: --save off writes no model or checkpoint"),
              std::string::npos)
        << r.output;
  }
}

TEST_F(TrainingRunTest, RefusesBeforeReadingWeightsWhenThePlanDoesNotFit) {
  config_.memory_limit = 1024;
  TrainingRun run(config_, progress_);
  try {
    run.prepare();
    ADD_FAILURE() << "a run over its memory limit was prepared";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("but the memory limit is 1.00 KiB"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(run.tracker().peak_total(), 0u) << "weights were allocated before the refusal";
  EXPECT_FALSE(fs::exists(config_.out_path));
}

}  // namespace
}  // namespace lomo
