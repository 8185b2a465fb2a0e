// lomo: full-parameter fine-tuning of LLaMA-family models with LOMO.
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "cli/commands.h"
#include "core/error.h"

namespace {

const char* kUsage =
    "usage: lomo <command> [flags]\n"
    "\n"
    "Full-parameter fine-tuning of LLaMA-family models (LLaMA, Mistral, Qwen2, SmolLM) with\n"
    "LOMO: each gradient is applied the moment backward computes it, then discarded.\n"
    "Models are Hugging Face folders or GGUF files; without --model, commands use the default\n"
    "model, SmolLM2-135M-Instruct (scripts/fetch_model.sh puts it in the cache).\n"
    "\n"
    "commands:\n"
    "  train   fine-tune a model folder on a JSONL file and save the result\n"
    "  eval    multiple-choice accuracy (SuperGLUE tasks, generic choices) by log-likelihood\n"
    "  score   print the mean next-token loss of each line of a JSONL file\n"
    "  tokenize  text to token ids and back, with the model's own tokenizer\n"
    "  export  convert a model: GGUF file (f32/f16/bf16/q8_0) or Hugging Face folder\n"
    "  init    write a randomly initialised model for a config.json\n"
    "  memory  predict (and --measure) the memory of a training step, by category\n"
    "  generate  continue a prompt (or a JSONL of prompts) with a KV cache: greedy or sampled\n"
    "\n"
    "Run 'lomo <command> --help' for the flags of a command.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "train") return lomo::cli::cmd_train(argc, argv);
    if (cmd == "score") return lomo::cli::cmd_score(argc, argv);
    if (cmd == "init") return lomo::cli::cmd_init(argc, argv);
    if (cmd == "eval") return lomo::cli::cmd_eval(argc, argv);
    if (cmd == "tokenize") return lomo::cli::cmd_tokenize(argc, argv);
    if (cmd == "export") return lomo::cli::cmd_export(argc, argv);
    if (cmd == "memory") return lomo::cli::cmd_memory(argc, argv);
    if (cmd == "generate") return lomo::cli::cmd_generate(argc, argv);
    std::fprintf(stderr, "lomo: unknown command \"%s\"\n\n%s", cmd.c_str(), kUsage);
    return 2;
  } catch (const lomo::Error& e) {
    std::fprintf(stderr, "lomo %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "lomo %s: error: out of memory\n", cmd.c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lomo %s: %s\n", cmd.c_str(), e.what());
    return 3;
  }
}
