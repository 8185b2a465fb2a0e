#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "io/output_dir.h"
#include "model/config.h"
#include "model/init.h"
#include "model/loader.h"
#include "model/params.h"
#include "train/memory_plan.h"

namespace lomo::cli {

int cmd_init(int argc, char** argv) {
  Args args("init", "lomo init --config FILE.json --out DIR [--seed N]",
            "Writes a randomly initialised model (config.json + model.safetensors, fp32) for any\n"
            "supported config: linear and embedding weights ~ N(0, initializer_range), norm\n"
            "weights 1, biases 0. The same seed gives the same weights on any machine.",
            {{"config", "FILE", "a Hugging Face config.json", "", true},
             {"out", "DIR", "output model folder (must not exist, or be empty)", "", true},
             {"seed", "N", "random seed", "0"},
             {"dtype", "D", "storage of the 2-D tensors: fp32, bf16 or fp16", "fp32"}});
  args.parse(argc, argv, 2);
  if (args.help_requested()) {
    std::fputs(args.help().c_str(), stdout);
    return 0;
  }
  const uint64_t seed = static_cast<uint64_t>(args.integer("seed", 0, INT64_MAX));
  const ModelConfig config = load_config(args.str("config"));
  const StorageDtype dtype = parse_storage_dtype(args.str("dtype"));
  OutputDir out(args.str("out"));
  // Streamed one tensor at a time: memory ≈ the largest tensor, whatever the model's size; the
  // disk is checked for the whole file first.
  const uint64_t bytes = random_model_bytes(config, dtype);
  out.require_space(bytes);
  out.create();
  write_random_model(out.staging(), config, seed, dtype, *make_backend());
  out.commit();
  std::printf("wrote %s: %s, %lld parameters (%s), seed %llu\n", args.str("out").c_str(),
              arch_name(config.arch), static_cast<long long>(count_params(config)),
              format_bytes(bytes).c_str(), static_cast<unsigned long long>(seed));
  return 0;
}

}  // namespace lomo::cli
