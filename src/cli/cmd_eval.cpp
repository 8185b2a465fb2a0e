#include <cstdio>
#include <optional>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/preamble.h"
#include "core/error.h"
#include "core/progress.h"
#include "data/dataset.h"
#include "io/file.h"
#include "model/loader.h"
#include "model/lora_files.h"
#include "text/tokenizer.h"
#include "train/engine.h"
#include "train/evaluate.h"

namespace lomo::cli {

int cmd_eval(int argc, char** argv) {
  Args args(
      "eval",
      "lomo eval --model DIR --data FILE.jsonl [--task T] [--normalize none|tokens] [--out FILE]",
      "Multiple-choice accuracy by log-likelihood, as the LOMO paper evaluates: each candidate\n"
      "answer is scored by the summed NLL of its tokens plus EOS after the prompt; the lowest\n"
      "wins. --task reads a SuperGLUE task's official JSONL fields and builds the paper's\n"
      "prompts; 'choice' reads {\"prompt\", \"choices\": [...], \"label\"}.",
      {model_flag("model folder or .gguf file, with a tokenizer"),
       {"data", "FILE", "JSONL examples", "", true},
       {"task", "NAME", "boolq, rte, wic, wsc, multirc, copa or choice", "choice"},
       {"normalize", "none|tokens", "divide each candidate's NLL by its token count", "none"},
       {"out", "FILE", "write one JSON object per example: scores, prediction, label", ""},
       {"seq-len", "N", "longer prompts lose tokens from their start", "min(1024, context)"},
       {"lora", "DIR", "apply the LoRA adapters of this PEFT folder (as lomo train writes them)",
        ""},
       threads_flag()});
  args.parse(argc, argv, 2);
  if (args.help_requested()) {
    std::fputs(args.help().c_str(), stdout);
    return 0;
  }
  const std::string model_path = model_preamble(args);
  const std::unique_ptr<Backend> backend = backend_from_args(args);
  const data::Task task = data::parse_task(args.str("task"));
  const Normalize norm = args.choice("normalize", {"none", "tokens"}) == "tokens"
                             ? Normalize::Tokens
                             : Normalize::None;
  const auto examples = data::load_choice_examples(args.str("data"), task);
  MemoryTracker tracker;
  // The adapters first (config, tensors, shapes): a bad folder is named before the weights load.
  std::optional<LoraAdapters> lora;
  if (args.given("lora")) {
    lora.emplace(read_peft_adapter(args.str("lora"), load_model_config(model_path), tracker));
  }
  LiveLine line(stderr, is_live_terminal(stderr));  // progress on stderr; results on stdout
  Progress loading(line, "load", "parameters");
  Model model = load_model(model_path, tracker, StorageDtype::F32, loading.fn());
  loading.finish();
  const auto tok = text::load_tokenizer(model_path);
  if (!tok)
    throw Error(model_path + ": evaluation needs a tokenizer (tokenizer.json or tokenizer.model)");
  const int64_t seq_len = args.given("seq-len")
                              ? args.integer("seq-len", 2, model.config.max_position)
                              : std::min<int64_t>(1024, model.config.max_position);
  const auto net = make_model(model.config, model.params, tracker, *backend, seq_len);
  if (lora) net->set_lora(&*lora);
  std::vector<ChoicePrediction> preds;
  Progress scoring(line, "eval", "examples");
  const ChoiceAccuracy acc =
      evaluate_choices(*net, *tok, examples, norm, seq_len, &preds, scoring.fn());
  scoring.finish();
  int64_t truncated = 0;
  for (const auto& p : preds) truncated += p.truncated;
  std::printf("%s: accuracy %.4f (%lld/%lld labelled, %lld examples%s)\n", data::task_name(task),
              acc.accuracy(), static_cast<long long>(acc.correct),
              static_cast<long long>(acc.labelled), static_cast<long long>(acc.examples),
              truncated ? (", " + std::to_string(truncated) + " prompts truncated").c_str() : "");
  if (args.given("out")) {
    std::string out;
    for (size_t i = 0; i < preds.size(); ++i) {
      nlohmann::ordered_json j;
      j["index"] = i;
      j["prediction"] = preds[i].prediction;
      j["label"] = examples[i].label;
      j["scores"] = preds[i].scores;
      j["candidates"] = examples[i].candidates;
      out += j.dump() + "\n";
    }
    write_file_atomic(args.str("out"), out);
  }
  return 0;
}

}  // namespace lomo::cli
