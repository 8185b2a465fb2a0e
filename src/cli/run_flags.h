// The flags of a training run, declared once: `lomo train` declares all of them, `lomo memory`
// the ones that change a step's memory. A flag both commands declare is the same Flag (name,
// help, default) read by the same code into the same RunConfig field, so the two commands cannot
// disagree about what a flag means or what it defaults to.
#pragma once

#include <vector>

#include "cli/args.h"
#include "train/run_config.h"

namespace lomo::cli {

enum class RunCommand { Train, Memory };

// The run flags of `command`, in --help order.
std::vector<Flag> run_flags(RunCommand command);

// The RunConfig of the parsed flags. Flags the command does not declare keep RunConfig's
// defaults, which are the flags' defaults. Throws lomo::Error naming a flag with a bad value;
// the rules between flags are check_run_config()'s.
RunConfig run_config_from_args(const Args& args);

// Refuses a flag that was given but cannot act in this run (e.g. --rounding without bf16
// parameters, --gguf-type without --out-format gguf), naming the conflict, instead of ignoring
// it. run_config_from_args calls it.
void check_flags_apply(const Args& args, const RunConfig& run);

}  // namespace lomo::cli
