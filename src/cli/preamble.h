// What every command that runs a model (train, eval, score, memory) does first: --model, else the
// default model; --threads, else all cores.
#pragma once

#include <string>

#include "cli/args.h"

namespace lomo::cli {

// --model PATH with its default (the default model) and `help`.
Flag model_flag(std::string help);
// --threads N, default all cores.
Flag threads_flag();

enum class ModelNeed { Required, Optional };

// Applies --threads (when given) and returns the model path: --model, or else the default model
// (throws lomo::Error saying how to fetch it when it is not in the cache). With
// ModelNeed::Optional (memory --config) returns "" instead of looking for the default model.
std::string model_preamble(const Args& args, ModelNeed need = ModelNeed::Required);

}  // namespace lomo::cli
