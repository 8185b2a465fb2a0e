#include <cstdio>
#include <filesystem>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/preamble.h"
#include "core/error.h"
#include "core/progress.h"
#include "io/output_dir.h"
#include "model/export.h"
#include "model/loader.h"
#include "text/tokenizer.h"

namespace lomo::cli {

int cmd_export(int argc, char** argv) {
  Args args(
      "export", "lomo export [--model PATH] --out FILE.gguf|DIR [--type f32|f16|bf16|q8_0]",
      "Converts a model. --out ending in .gguf writes a GGUF file for llama.cpp (q/k rows\n"
      "permuted as llama.cpp expects, the tokenizer embedded, 2-D weights in --type, norms\n"
      "and biases in F32); anything else is a new Hugging Face folder (config.json,\n"
      "model.safetensors in fp32, tokenizer.json / tokenizer_config.json) that transformers\n"
      "loads as it is.",
      {model_flag("model folder or .gguf file"),
       {"out", "FILE|DIR", "a .gguf file, or a folder that does not exist (or is empty)", "", true},
       {"type", "T", "GGUF weight type: f32, f16, bf16 or q8_0", "f32"}});
  args.parse(argc, argv, 2);
  if (args.help_requested()) {
    std::fputs(args.help().c_str(), stdout);
    return 0;
  }
  const std::string src = model_preamble(args);
  const std::string out = args.str("out");
  const bool gguf = out.size() > 5 && out.compare(out.size() - 5, 5, ".gguf") == 0;
  const GgmlType type = parse_gguf_out_type(args.str("type"));
  if (!gguf && args.given("type")) throw Error("--type applies to .gguf output only");
  if (gguf && std::filesystem::exists(out))
    throw Error(out + ": already exists; choose a new --out");
  std::unique_ptr<OutputDir> dir;
  if (!gguf) dir = std::make_unique<OutputDir>(out);
  if (gguf) check_gguf_exportable(load_model_config(src));  // before any weight is read
  MemoryTracker tracker;
  LiveLine line(stderr, is_live_terminal(stderr));  // progress on stderr; results on stdout
  Progress loading(line, "load", "parameters");
  const Model model = load_model(src, tracker, StorageDtype::F32, loading.fn());
  loading.finish();
  const auto tok = text::load_tokenizer(src);
  Progress writing(line, "write", "parameters");
  if (gguf) {
    export_gguf(out, model, tok.get(), src, type, writing.fn());
  } else {
    dir->create();
    export_hf(dir->staging(), model, tok.get(), src, writing.fn());
    dir->commit();
  }
  writing.finish();
  std::printf("wrote %s (%s%s)\n", out.c_str(), gguf ? "GGUF, " : "Hugging Face folder",
              gguf ? args.str("type").c_str() : "");
  return 0;
}

}  // namespace lomo::cli
