// `lomo generate` through the real binary: bad inputs refused with exit 1 and a message naming
// the problem (before any weight is read), greedy output equal to the library's, the batch mode's
// JSONL, and a seed that repeats a sampled run.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "model/decoder.h"
#include "test_run.h"
#include "test_util.h"
#include "train/generate.h"

namespace lomo {
namespace {

namespace fs = std::filesystem;

struct Result {
  int status;       // exit code, −1 when killed by a signal
  std::string out;  // stdout
  std::string err;  // stderr
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

class GenerateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("lomo_gen_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    model_ = test::fixture_dir("eval_model");
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result run(const std::string& args) {
    const fs::path err = dir_ / "stderr.txt";
    const test::CommandResult r = test::run_command(std::string(LOMO_BINARY) + " generate " +
                                                    args + " 2>" + err.string());
    return {r.status, r.output, slurp(err)};
  }

  void expect_refused(const std::string& args, const std::string& needle) {
    const Result r = run(args);
    EXPECT_EQ(r.status, 1) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos)
        << args << ": expected the message to mention \"" << needle << "\", got:\n"
        << r.err;
  }

  fs::path dir_;
  std::string model_;
};

TEST_F(GenerateCli, BadInputsAreRefusedWithAMessage) {
  const std::string m = "--model " + model_ + " ";
  expect_refused("--model /nonexistent/model --prompt hi", "/nonexistent/model");
  expect_refused(m + "--prompt ''", "--prompt is empty");
  expect_refused(m, "give --prompt TEXT, --prompts FILE.jsonl, or --chat");
  expect_refused(m + "--prompt hi --temperature warm", "--temperature");
  expect_refused(m + "--prompt hi --temperature -1", "--temperature");
  expect_refused(m + "--prompt hi --top-p 0", "--top-p");
  expect_refused(m + "--prompt hi --top-p 1.5", "--top-p");
  expect_refused(m + "--prompt hi --top-k -2", "--top-k");
  expect_refused(m + "--prompt hi --min-p 2", "--min-p");
  expect_refused(m + "--prompt hi --max-new-tokens 0", "--max-new-tokens");
  expect_refused(m + "--prompt hi --repetition-penalty 0", "--repetition-penalty");
  expect_refused(m + "--prompt hi --seed x", "--seed");
  expect_refused(m + "--prompt hi --stop ''", "--stop");
  expect_refused(m + "--prompt hi --dtype fp8", "fp8");
  expect_refused(m + "--prompt hi --bf16-gemm on", "--dtype bf16");
  expect_refused(m + "--prompt hi --out x.jsonl", "--out");
  const fs::path prompts = dir_ / "p.jsonl";
  expect_refused(m + "--prompt hi --prompts " + prompts.string(), "not both");
  // Chat: its flags only with --chat; a model without a template names the flag that gives one.
  expect_refused(m + "--prompt hi --system brief", "--system has no effect here");
  expect_refused(m + "--prompt hi --chat-template t.jinja", "--chat-template has no effect");
  expect_refused(m + "--chat --prompt hi", "no chat template; give one with --chat-template FILE");
  expect_refused(m + "--chat --prompt hi --chat-template /nonexistent/t.jinja",
                 "/nonexistent/t.jinja");
  expect_refused(m + "--prompts " + prompts.string(), "cannot open");
  std::ofstream(prompts) << "{\"prompt\": \"fine\"}\n{\"text\": \"no prompt\"}\n";
  expect_refused(m + "--prompts " + prompts.string(), "p.jsonl:2");
  std::ofstream(prompts) << "{\"prompt\": \"\"}\n";
  expect_refused(m + "--prompts " + prompts.string(), "p.jsonl:1: the prompt is empty");
  std::ofstream(prompts) << "{\"prompt\": \"ok\"}\n";
  expect_refused(
      m + "--prompts " + prompts.string() + " --out " + (dir_ / "no/such/o.jsonl").string(),
      "cannot write");
  // A prompt longer than the model's context (256 positions) is refused before the weights.
  std::string long_prompt;
  for (int i = 0; i < 400; ++i) long_prompt += "word ";
  expect_refused(m + "--prompt '" + long_prompt + "'", "context is 256");
}

// The binary's greedy text equals the library's on the same model and prompt.
TEST_F(GenerateCli, GreedyOutputEqualsTheLibrary) {
  const Result r =
      run("--model " + model_ +
          " --prompt 'Once upon a time' --temperature 0 --max-new-tokens 12 --threads 1 "
          "--stats");
  ASSERT_EQ(r.status, 0) << r.err;
  test::TestRun lib(model_);
  const auto tok = text::load_tokenizer(model_);
  CachedDecoder dec(lib.config(), lib.params(), lib.tracker, *lib.backend);
  GenerateOptions opts;
  opts.max_new_tokens = 12;
  opts.sampling.temperature = 0;
  opts.stop_ids = end_of_sequence_ids(model_, lib.config(), tok.get());
  const Generation g =
      Generator(dec, tok.get()).generate(encode_prompt(*tok, "Once upon a time"), opts);
  EXPECT_EQ(r.out, g.text + "\n");
  EXPECT_NE(r.err.find("decode"), std::string::npos) << r.err;  // --stats line
}

// --chat renders each prompt as a user turn (after --system) with the template, encodes the
// text without an added BOS, and continues it: equal to the library on those ids. Interactive,
// each stdin line is a turn; the second turn reuses the first's cached prefix.
TEST_F(GenerateCli, ChatRendersTurnsWithTheTemplateAndReusesTheCache) {
  const fs::path tpl = dir_ / "t.jinja";
  std::ofstream(tpl) << "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
                        "{% if add_generation_prompt %}[assistant]{% endif %}";
  const std::string base = "--model " + model_ + " --chat --chat-template " + tpl.string() +
                           " --temperature 0 --max-new-tokens 8 --threads 1 ";
  const Result r = run(base + "--system 'Be brief.' --prompt 'Once upon a time'");
  ASSERT_EQ(r.status, 0) << r.err;
  test::TestRun lib(model_);
  const auto tok = text::load_tokenizer(model_);
  CachedDecoder dec(lib.config(), lib.params(), lib.tracker, *lib.backend);
  GenerateOptions opts;
  opts.max_new_tokens = 8;
  opts.sampling.temperature = 0;
  opts.stop_ids = end_of_sequence_ids(model_, lib.config(), tok.get());
  const Generation g = Generator(dec, tok.get())
                           .generate(tok->encode("[system] Be brief.\n[user] Once upon a time\n"
                                                 "[assistant]"),
                                     opts);
  EXPECT_EQ(r.out, g.text + "\n");

  const fs::path in = dir_ / "turns.txt";
  std::ofstream(in) << "Once upon a time\nAnd then\n\nnever read\n";
  const Result chat = run(base + "--stats < " + in.string());
  ASSERT_EQ(chat.status, 0) << chat.err;
  EXPECT_EQ(std::count(chat.out.begin(), chat.out.end(), '\n'), 2) << chat.out;
  EXPECT_NE(chat.err.find("[turn 1] "), std::string::npos) << chat.err;
  EXPECT_NE(chat.err.find("[turn 2] "), std::string::npos) << chat.err;
  EXPECT_EQ(chat.err.find("[turn 3] "), std::string::npos) << "an empty line ends the chat";
  EXPECT_EQ(chat.err.find("[turn 2] 0 prompt"), std::string::npos);
  EXPECT_EQ(chat.err.find(" (0 reused)", chat.err.find("[turn 2]")), std::string::npos)
      << "the second turn recomputed the first:\n"
      << chat.err;
}

TEST_F(GenerateCli, BatchModeWritesJsonlAndSeedsRepeat) {
  const fs::path prompts = dir_ / "p.jsonl", out1 = dir_ / "o1.jsonl", out2 = dir_ / "o2.jsonl",
                 out3 = dir_ / "o3.jsonl";
  std::ofstream(prompts)
      << "{\"prompt\": \"Hello\"}\n\n{\"prompt\": \"The weather \\u00e9t\\u00e9\"}\n";
  const std::string base = "--model " + model_ + " --prompts " + prompts.string() +
                           " --temperature 1 --top-k 50 --max-new-tokens 10 --threads 1 ";
  ASSERT_EQ(run(base + "--seed 5 --out " + out1.string()).status, 0);
  ASSERT_EQ(run(base + "--seed 5 --out " + out2.string()).status, 0);
  ASSERT_EQ(run(base + "--seed 6 --out " + out3.string()).status, 0);
  EXPECT_FALSE(fs::exists(out1.string() + ".partial"));
  const std::string a = slurp(out1);
  EXPECT_EQ(a, slurp(out2));
  EXPECT_NE(a, slurp(out3));
  std::istringstream lines(a);
  std::string line;
  int n = 0;
  for (; std::getline(lines, line); ++n) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.at("prompt").is_string());
    EXPECT_TRUE(j.at("completion").is_string());
    EXPECT_GE(j.at("tokens").get<int>(), 1);
    EXPECT_LE(j.at("tokens").get<int>(), 10);
    EXPECT_TRUE(j.at("finish_reason") == "eos" || j.at("finish_reason") == "length") << line;
  }
  EXPECT_EQ(n, 2);
  EXPECT_EQ(nlohmann::json::parse(a.substr(a.find('\n') + 1)).at("prompt"), "The weather été");
}

TEST_F(GenerateCli, HelpExplains) {
  const Result r = run("--help");
  EXPECT_EQ(r.status, 0);
  for (const char* s : {"--temperature", "--top-p", "--min-p", "--stop", "--prompts", "--seed",
                        "greedy", "cached keys", "finish_reason"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  }
}

}  // namespace
}  // namespace lomo
