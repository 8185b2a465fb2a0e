// Text data and evaluation against the reference of tests/tools/make_eval_fixtures.py:
// prompt/completion masking, the paper's SuperGLUE prompts, and log-likelihood scoring.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/dataset.h"
#include "model/loader.h"
#include "test_run.h"
#include "test_util.h"
#include "text/tokenizer.h"
#include "train/evaluate.h"

namespace lomo {
namespace {

std::string data_file(const std::string& name) {
  return std::string(LOMO_TEST_DATA_DIR) + "/" + name;
}
std::string eval_model() {
  return test::fixture_dir("eval_model");
}
nlohmann::json read_json(const std::string& p) {
  return nlohmann::json::parse(std::ifstream(p));
}

const char* const kTasks[] = {"boolq", "rte", "wic", "wsc", "multirc", "copa", "choice"};

TEST(Tasks, PromptsEqualAnIndependentBuild) {
  const auto expected = read_json(eval_model() + "/expected_prompts.json");
  for (const char* t : kTasks) {
    const auto got =
        data::load_choice_examples(data_file(std::string(t) + ".jsonl"), data::parse_task(t));
    const auto& want = expected[t];
    ASSERT_EQ(got.size(), want.size()) << t;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].prompt, want[i]["prompt"].get<std::string>()) << t << " example " << i;
      EXPECT_EQ(got[i].candidates, want[i]["candidates"].get<std::vector<std::string>>())
          << t << " " << i;
      EXPECT_EQ(got[i].label, want[i]["label"].get<int>()) << t << " example " << i;
    }
  }
}

TEST(Tasks, PromptsAreThePapersTemplates) {
  // Written out by hand from the templates, for two tasks with the trickiest rules.
  const auto boolq = data::load_choice_examples(data_file("boolq.jsonl"), data::Task::BoolQ);
  EXPECT_EQ(boolq[0].prompt,
            "The Sun is the star at the center of the Solar System. It is a nearly perfect ball of "
            "hot plasma. is the sun a star\nAnswer: ");
  EXPECT_EQ(boolq[0].candidates, (std::vector<std::string>{"No", "Yes"}));
  EXPECT_EQ(boolq[0].label, 1);
  EXPECT_EQ(boolq[2].label, -1);  // unlabelled line
  const auto copa = data::load_choice_examples(data_file("copa.jsonl"), data::Task::Copa);
  EXPECT_EQ(copa[0].prompt, "My body cast a shadow over the grass because ");
  EXPECT_EQ(copa[2].prompt, "The glass fell off the table so ");
  const auto rte = data::load_choice_examples(data_file("rte.jsonl"), data::Task::Rte);
  EXPECT_EQ(rte[0].prompt,
            "The cat sat on the mat while the dog slept by the fire.\nDoes this mean that \"A cat "
            "was on the mat.\" is true? Yes or No?\nAnswer: ");
  EXPECT_EQ(rte[0].candidates, (std::vector<std::string>{"Yes", "No"}));
  EXPECT_EQ(rte[0].label, 0);
  const auto multirc = data::load_choice_examples(data_file("multirc.jsonl"), data::Task::MultiRc);
  EXPECT_EQ(multirc.size(), 3u);  // one example per answer option
}

TEST(Eval, PicksTheCandidateTheReferenceScoresLowest) {
  const auto ref = read_json(eval_model() + "/eval_reference.json");
  test::TestRun run(eval_model());
  LlamaModel& net = run.net;
  const auto tok = text::load_tokenizer(eval_model());
  ASSERT_NE(tok, nullptr);
  double worst = 0;
  for (const char* t : kTasks) {
    const auto examples =
        data::load_choice_examples(data_file(std::string(t) + ".jsonl"), data::parse_task(t));
    for (Normalize norm : {Normalize::None, Normalize::Tokens}) {
      std::vector<ChoicePrediction> preds;
      evaluate_choices(net, *tok, examples, norm, 256, &preds);
      for (size_t i = 0; i < preds.size(); ++i) {
        const auto want =
            ref[t][i][norm == Normalize::None ? "scores" : "normalized"].get<std::vector<double>>();
        for (size_t c = 0; c < want.size(); ++c) {
          // Summed NLL over a few tokens of a 2-layer fp32 model: fp32 rounding ~1e-6 relative.
          EXPECT_NEAR(preds[i].scores[c], want[c], 1e-4 * std::abs(want[c]))
              << t << " " << i << " " << c;
          worst = std::max(worst, std::abs(preds[i].scores[c] - want[c]) / std::abs(want[c]));
        }
        if (norm == Normalize::None) {
          EXPECT_EQ(preds[i].prediction, ref[t][i]["argmin"].get<int>()) << t << " example " << i;
        }
      }
    }
  }
  std::printf("  candidate scores vs transformers: worst relative difference %.2e\n", worst);
}

TEST(PromptCompletion, LossCountsOnlyCompletionAndEos) {
  const auto ref = read_json(eval_model() + "/pc_reference.json");
  test::TestRun run(eval_model());
  const Model& m = run.model;
  const auto tok = text::load_tokenizer(eval_model());
  const data::Dataset ds = data::load_dataset(data_file("prompt_completion.jsonl"),
                                              {256, &m.config, tok.get(), std::nullopt});
  EXPECT_EQ(ds.format, data::Format::PromptCompletion);
  const Batch batch = make_batch(ds.examples);
  EXPECT_EQ(batch.loss_tokens, ref["loss_tokens"].get<int64_t>());
  const double loss = run.net.forward(batch);
  EXPECT_NEAR(loss, ref["mean_loss"].get<double>(), 1e-5 * loss);
  // The last loss token of every line is EOS.
  for (const auto& s : ds.examples) EXPECT_EQ(s.ids.back(), tok->eos_id);
}

// Errors name the file, the line and the field.
void expect_error(const std::string& content, data::Task task, const std::string& needle) {
  const std::string path = ::testing::TempDir() + "/bad_task.jsonl";
  std::ofstream(path) << content;
  try {
    data::load_choice_examples(path, task);
    ADD_FAILURE() << "accepted: " << content;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Tasks, BadLinesNameFileLineAndField) {
  expect_error("{\"question\": \"q\", \"passage\": \"p\", \"label\": true}\n{oops\n",
               data::Task::BoolQ, "bad_task.jsonl:2: invalid JSON");
  expect_error("{\"question\": \"q\", \"label\": true}\n", data::Task::BoolQ,
               "bad_task.jsonl:1: field \"passage\" is missing");
  expect_error(
      "{\"premise\": \"p\", \"choice1\": \"a\", \"choice2\": \"b\", \"question\": \"cause\", "
      "\"label\": 2}\n",
      data::Task::Copa, "bad_task.jsonl:1: field \"label\" = 2 is out of range [0, 2)");
  expect_error("{\"prompt\": \"p\", \"choices\": [], \"label\": 0}\n", data::Task::Choice,
               "field \"choices\" must be a non-empty list");
  expect_error(
      "{\"idx\": 0, \"passage\": {\"text\": \"t\", \"questions\": [{\"question\": \"q\", "
      "\"answers\": []}]}}\n",
      data::Task::MultiRc, "field \"passage.questions[0].answers\" must be a non-empty list");
  expect_error("{\"premise\": \"p\", \"hypothesis\": \"h\", \"label\": \"maybe\"}\n",
               data::Task::Rte, "field \"label\" must be \"entailment\" or \"not_entailment\"");
  expect_error("{\"text\": \"t\", \"target\": {\"span1_text\": \"a\"}, \"label\": true}\n",
               data::Task::Wsc, "field \"target.span2_text\" is missing");
}

TEST(Data, MixedFormsAreRefusedNamingTheLine) {
  MemoryTracker tracker;
  Model m = load_model(eval_model(), tracker);
  const auto tok = text::load_tokenizer(eval_model());
  const std::string path = ::testing::TempDir() + "/mixed.jsonl";
  std::ofstream(path)
      << "{\"text\": \"hello there\"}\n{\"prompt\": \"a\", \"completion\": \"b\"}\n";
  try {
    data::load_dataset(path, {256, &m.config, tok.get(), std::nullopt});
    ADD_FAILURE() << "mixed file accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mixed.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(Data, TruncationIsCounted) {
  MemoryTracker tracker;
  Model m = load_model(eval_model(), tracker);
  const auto tok = text::load_tokenizer(eval_model());
  const std::string path = ::testing::TempDir() + "/long.jsonl";
  std::ofstream(path) << "{\"text\": \"one two three four five six seven eight nine "
                         "ten\"}\n{\"text\": \"hi there\"}\n";
  const auto ds = data::load_dataset(path, {4, &m.config, tok.get(), std::nullopt});
  EXPECT_EQ(ds.truncated, 1);
  EXPECT_EQ(ds.examples[0].ids.size(), 4u);
}

TEST(EvalCli, WritesAccuracyAndPredictions) {
  const std::string out = ::testing::TempDir() + "/copa_preds.jsonl";
  const std::string cmd = std::string(LOMO_BINARY) + " eval --model " + eval_model() + " --data " +
                          data_file("copa.jsonl") + " --task copa --out " + out +
                          " --threads 1 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string text;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) text += buf;
  ASSERT_EQ(WEXITSTATUS(pclose(p)), 0) << text;
  EXPECT_NE(text.find("copa: accuracy"), std::string::npos) << text;
  const auto ref = read_json(eval_model() + "/eval_reference.json");
  std::ifstream in(out);
  std::string line;
  int i = 0;
  for (; std::getline(in, line); ++i) {
    EXPECT_EQ(nlohmann::json::parse(line)["prediction"].get<int>(),
              ref["copa"][i]["argmin"].get<int>());
  }
  EXPECT_EQ(i, 3);
}

}  // namespace
}  // namespace lomo

namespace lomo {
namespace {

std::string run_cli(const std::string& args, int* status) {
  const test::CommandResult r =
      test::run_command(std::string(LOMO_BINARY) + " " + args + " 2>&1");
  *status = r.status;
  return r.output;
}

TEST(TokenizeCli, EncodesAndDecodesBack) {
  const std::string model = test::fixture_dir("tokenizers/llama3");
  int st = 0;
  const std::string ids =
      run_cli("tokenize --model " + model + " --text 'Hello, world 123' --special off", &st);
  ASSERT_EQ(st, 0) << ids;
  const auto tok = text::load_tokenizer(model);
  EXPECT_EQ(nlohmann::json::parse(ids).get<std::vector<int32_t>>(),
            tok->encode("Hello, world 123"));
  std::string arr = ids;
  arr.erase(arr.find_last_not_of('\n') + 1);
  const std::string back =
      run_cli("tokenize --model " + model + " --decode --text '" + arr + "'", &st);
  ASSERT_EQ(st, 0) << back;
  EXPECT_EQ(nlohmann::json::parse(back).get<std::string>(), "Hello, world 123");
  const std::string with_bos = run_cli("tokenize --model " + model + " --text 'Hello'", &st);
  EXPECT_EQ(nlohmann::json::parse(with_bos)[0].get<int32_t>(), tok->bos_id);
  const std::string bad = run_cli("tokenize --model " + model + " --decode --text 'nope'", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(bad.find("JSON array of token ids"), std::string::npos) << bad;
}

}  // namespace
}  // namespace lomo
