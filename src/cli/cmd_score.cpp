#include <cstdio>
#include <memory>
#include <optional>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/preamble.h"
#include "data/dataset.h"
#include "model/loader.h"
#include "model/lora_files.h"
#include "text/tokenizer.h"
#include "train/engine.h"

namespace lomo::cli {

int cmd_score(int argc, char** argv) {
  Args args(
      "score", "lomo score --model DIR --data FILE.jsonl [--batch-size N] [--threads N]",
      "Prints one JSON object per input line on stdout: {\"loss\": mean NLL over that line's\n"
      "loss-bearing tokens, \"tokens\": how many}. Lines are {\"text\"} (every token after\n"
      "the first), {\"prompt\", \"completion\"} (completion + EOS) or {\"input_ids\"}.",
      {model_flag("Hugging Face model folder or .gguf file"),
       {"data", "FILE", "JSONL, the forms lomo train reads", "", true},
       {"batch-size", "N", "sequences per forward pass", "4"},
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
  const int64_t batch_size = args.integer("batch-size", 1, 1 << 20);
  MemoryTracker tracker;
  // The adapters first (config, tensors, shapes): a bad folder is named before the weights load.
  std::optional<LoraAdapters> lora;
  if (args.given("lora")) {
    lora.emplace(read_peft_adapter(args.str("lora"), load_model_config(model_path), tracker));
  }
  Model model = load_model(model_path, tracker);
  const auto tok = text::load_tokenizer(model_path);
  data::DataOptions dopts{model.config.max_position, &model.config, tok.get(), std::nullopt};
  dopts.model_path = model_path;  // {"messages"} data: rendered with the model's chat template
  const data::Dataset data = data::load_dataset(args.str("data"), dopts);
  const auto net = make_model(model.config, model.params, tracker, *backend);
  if (lora) net->set_lora(&*lora);
  const int64_t n = static_cast<int64_t>(data.examples.size());
  for (int64_t start = 0; start < n; start += batch_size) {
    std::vector<Sequence> seqs(data.examples.begin() + start,
                               data.examples.begin() + std::min(n, start + batch_size));
    const Batch batch = make_batch(seqs);
    std::vector<float> nll;
    net->forward(batch, &nll);
    for (int64_t b = 0; b < batch.B; ++b) {
      const SequenceLoss l = sequence_loss(batch, nll, b);
      std::printf("{\"loss\": %.6f, \"tokens\": %lld}\n", l.tokens ? l.sum / l.tokens : 0.0,
                  static_cast<long long>(l.tokens));
    }
  }
  return 0;
}

}  // namespace lomo::cli
