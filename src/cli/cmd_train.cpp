#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/preamble.h"
#include "cli/run_flags.h"
#include "train/training_run.h"

namespace lomo::cli {

int cmd_train(int argc, char** argv) {
  Args args("train", "lomo train --model DIR --data FILE.jsonl --out DIR [flags]",
            "Fine-tunes all parameters of a model. With --optimizer lomo each parameter's\n"
            "gradient is applied inside backward and discarded, so training needs about the\n"
            "memory of inference. Prints one line per step and the memory table at the end;\n"
            "writes the model (a Hugging Face folder, or model.gguf) and memory.json to --out.",
            run_flags(RunCommand::Train));
  args.parse(argc, argv, 2);
  if (args.help_requested()) {
    std::fputs(args.help().c_str(), stdout);
    return 0;
  }
  RunConfig config = run_config_from_args(args);
  config.model_path = model_preamble(args);
  TrainingRun run(std::move(config), stdout);
  run.prepare();
  run.load();
  run.train();
  run.save();
  return 0;
}

}  // namespace lomo::cli
