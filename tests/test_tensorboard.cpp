// `lomo train --log-dir`: TensorBoard event files. The framing's CRC-32C against published test
// vectors; then real runs of the binary whose event files are read back by the `tensorboard`
// package's own readers (tests/tools/check_tensorboard.py, in the venv of
// scripts/tensorboard_venv.sh) and compared with the JSONL log of the same run, including a run
// killed midway; and a --log-dir that cannot be written, refused before the model is read.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "core/error.h"
#include "io/tfrecord.h"
#include "test_util.h"
#include "train/training_run.h"

namespace lomo {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

// --- framing --------------------------------------------------------------------------------

TEST(TfRecord, Crc32cMatchesPublishedVectors) {
  // The "check" value of CRC-32C (Castagnoli) in every CRC catalogue.
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  // RFC 3720 (iSCSI), appendix B.4: 32 bytes of zeros, of ones, ascending, descending.
  unsigned char b[32];
  std::memset(b, 0x00, sizeof b);
  EXPECT_EQ(crc32c(b, sizeof b), 0x8A9136AAu);
  std::memset(b, 0xFF, sizeof b);
  EXPECT_EQ(crc32c(b, sizeof b), 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) b[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(crc32c(b, sizeof b), 0x46DD794Eu);
  for (int i = 0; i < 32; ++i) b[i] = static_cast<unsigned char>(31 - i);
  EXPECT_EQ(crc32c(b, sizeof b), 0x113FDB5Cu);
  EXPECT_EQ(crc32c("", 0), 0u);
}

uint64_t le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<unsigned char>(s[at + i])} << (8 * i);
  return v;
}

TEST(TfRecord, FrameIsLengthCrcDataCrc) {
  const std::string data = "lomo\0event"s;
  const std::string r = tfrecord_frame(data);
  ASSERT_EQ(r.size(), 8 + 4 + data.size() + 4);
  EXPECT_EQ(le(r, 0, 8), data.size());
  // TFRecord's mask, written out: rotate right by 15, add 0xa282ead8.
  auto mask = [](uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; };
  EXPECT_EQ(le(r, 8, 4), mask(crc32c(r.data(), 8)));
  EXPECT_EQ(r.substr(12, data.size()), data);
  EXPECT_EQ(le(r, 12 + data.size(), 4), mask(crc32c(data.data(), data.size())));
  EXPECT_EQ(mask_crc32c(0xE3069283u), mask(0xE3069283u));
  EXPECT_NE(mask_crc32c(0xE3069283u), 0xE3069283u);
}

// --- runs of the binary -----------------------------------------------------------------------

struct Proc {
  int status = -1;
  std::string output;
};

Proc sh(const std::string& cmd) {
  Proc r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// The venv's python with the `tensorboard` package; "" (and a failure saying what to run) if
// it is not there.
std::string tensorboard_python() {
  const Proc p =
      sh("bash " + std::string(LOMO_SOURCE_DIR) + "/scripts/tensorboard_venv.sh --print");
  if (p.status != 0) {
    ADD_FAILURE() << "no Python with the tensorboard package: run scripts/tensorboard_venv.sh "
                     "(scripts/test.sh does)\n"
                  << p.output;
    return "";
  }
  std::string path = p.output;
  while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) path.pop_back();
  return path;
}

// Runs tests/tools/check_tensorboard.py; expects it to agree.
void expect_event_file_equals_log(const fs::path& log_dir, const fs::path& jsonl,
                                  const std::string& extra = "") {
  const std::string py = tensorboard_python();
  if (py.empty()) return;
  const Proc c = sh(py + " " + LOMO_SOURCE_DIR + "/tests/tools/check_tensorboard.py " +
                    log_dir.string() + " " + jsonl.string() + " " + extra);
  EXPECT_EQ(c.status, 0) << c.output;
  std::printf("  %s", c.output.c_str());
}

std::vector<nlohmann::json> read_jsonl(const fs::path& p) {
  std::vector<nlohmann::json> v;
  std::ifstream in(p);
  for (std::string l; std::getline(in, l);) v.push_back(nlohmann::json::parse(l));
  return v;
}

class TensorBoard : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("lomo_tb_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    data_ = dir_ / "data.jsonl";
    std::ofstream d(data_);
    for (int i = 0; i < 8; ++i) {
      d << "{\"input_ids\": [1";
      for (int t = 0; t < 6 + i; ++t) d << ", " << 3 + (i * 17 + t * 5) % 120;
      d << "]}\n";
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string train(const std::string& model, const std::string& flags) {
    return std::string(LOMO_BINARY) + " train --model " + model + " --out " +
           (dir_ / "out").string() + " --log " + (dir_ / "log.jsonl").string() +
           " --log-dir " + (dir_ / "tb").string() + " --threads 1 " + flags;
  }

  fs::path dir_, data_;
};

std::string gqa() { return test::fixture_dir("llama_gqa") + "/model"; }

TEST_F(TensorBoard, CurvesEqualTheJsonlLog) {
  // fp16 with clipping by norm: every per-step scalar (loss, lr, tokens/s, grad norm, loss
  // scale, memory) and the evaluation loss before, between and after the steps.
  const Proc r = sh(train(gqa(), "--data " + data_.string() + " --eval-data " + data_.string() +
                                     " --eval-every 2 --steps 5 --batch-size 2 --dtype fp16 "
                                     "--clip-grad-norm 1.0"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto log = read_jsonl(dir_ / "log.jsonl");
  ASSERT_EQ(log.size(), 5u + 4u) << "5 steps and evaluations at steps 0, 2, 4 and 5";
  for (const char* field : {"loss", "lr", "tokens_per_s", "grad_norm", "loss_scale",
                            "memory_peak_bytes", "rss_bytes"}) {
    EXPECT_TRUE(log[1].contains(field)) << "no " << field << " in " << log[1].dump();
  }
  EXPECT_GT(log[1]["memory_peak_bytes"].get<double>(), 0);
  EXPECT_GT(log[1]["rss_bytes"].get<double>(), 0);
  EXPECT_TRUE(log[0].contains("eval_loss")) << log[0].dump();
  expect_event_file_equals_log(dir_ / "tb", dir_ / "log.jsonl");
}

TEST_F(TensorBoard, EvalAccuracyWithATask) {
  const std::string choice = std::string(LOMO_TEST_DATA_DIR) + "/choice.jsonl";
  const Proc r = sh(train(test::fixture_dir("eval_model"),
                          "--task choice --data " + choice + " --eval-data " + choice +
                              " --eval-every 1 --steps 2 --batch-size 2"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto log = read_jsonl(dir_ / "log.jsonl");
  ASSERT_FALSE(log.empty());
  EXPECT_TRUE(log[0].contains("eval_accuracy")) << log[0].dump();
  expect_event_file_equals_log(dir_ / "tb", dir_ / "log.jsonl");
}

TEST_F(TensorBoard, AKilledRunLeavesAReadableFile) {
  // Far more steps than it can run before the kill, which comes once the log has three steps.
  const std::string cmd = "exec " + train(gqa(), "--data " + data_.string() +
                                                     " --steps 100000 --batch-size 2") +
                          " > " + (dir_ / "stdout").string() + " 2>&1";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  size_t lines = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(dir_ / "log.jsonl");
    lines = 0;
    for (std::string l; std::getline(in, l);) ++lines;
    if (lines >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
      << "the run ended before it was killed:\n"
      << sh("cat " + (dir_ / "stdout").string()).output;
  ASSERT_GE(lines, 3u);
  expect_event_file_equals_log(dir_ / "tb", dir_ / "log.jsonl", "--killed");
}

TEST_F(TensorBoard, UnwritableLogDirIsRefusedBeforeTheModelIsRead) {
  // A model folder whose config.json is not JSON: had it been read first, the message would be
  // about the config.
  const fs::path model = dir_ / "model";
  fs::copy(gqa(), model);
  std::ofstream(model / "config.json") << "not json";
  const fs::path file = dir_ / "a_file";
  std::ofstream(file) << "x";
  for (const fs::path& bad : {file, file / "sub"}) {
    SCOPED_TRACE(bad.string());
    const Proc r = sh(std::string(LOMO_BINARY) + " train --model " + model.string() + " --data " +
                      data_.string() + " --out " + (dir_ / "out").string() + " --log-dir " +
                      bad.string() + " --steps 1 --threads 1");
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find(bad.string()), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("choose another --log-dir"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("config"), std::string::npos) << "the model was read first:\n"
                                                          << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "out"));
  }
}

TEST_F(TensorBoard, ARunRefusedInPrepareLeavesNoLogFolder) {
  RunConfig c;
  c.model_path = gqa();
  c.data_path = data_.string();
  c.out_path = (dir_ / "out").string();
  c.log_dir = (dir_ / "tb" / "run1").string();
  c.steps = 1;
  c.threads = 1;
  c.memory_limit = 1024;  // refused by the memory plan, after the log folder was made
  std::FILE* sink = std::tmpfile();
  {
    TrainingRun run(c, sink);
    EXPECT_THROW(run.prepare(), Error);
    EXPECT_TRUE(fs::exists(c.log_dir)) << "the log folder was not made (proven writable) early";
  }
  std::fclose(sink);
  EXPECT_FALSE(fs::exists(c.log_dir)) << "an empty event file or folder was left behind";
}

TEST(TensorBoardLink, OurProtobufAndSentencepiecesStayApart) {
  // Debian's libsentencepiece carries its own protobuf-lite under the same symbol names. Ours is
  // linked statically and unexported (CMakeLists.txt): the binary neither exports a protobuf
  // symbol (sentencepiece's calls would bind to it) nor imports one (ours would bind to
  // sentencepiece's copy; that crashed in MessageLite::SerializeAsString).
  for (const char* which : {"--defined-only", "--undefined-only"}) {
    const Proc p = sh(std::string("nm -D ") + which + " " + LOMO_BINARY);
    ASSERT_EQ(p.status, 0) << p.output;
    EXPECT_EQ(p.output.find("protobuf"), std::string::npos) << which << ":\n" << p.output;
  }
}

}  // namespace
}  // namespace lomo
