// What every command that runs a model (train, eval, score, memory) does first: --model, else the
// default model; the backend with --threads, else all cores.
#pragma once

#include <memory>
#include <string>

#include "cli/args.h"
#include "ops/backend.h"

namespace lomo::cli {

// --model PATH with its default (the default model) and `help`.
Flag model_flag(std::string help);
// --threads N, default all cores.
Flag threads_flag();

enum class ModelNeed { Required, Optional };

// The model path: --model, or else the default model (throws lomo::Error saying how to fetch it
// when it is not in the cache). With ModelNeed::Optional (memory --config) returns "" instead of
// looking for the default model.
std::string model_preamble(const Args& args, ModelNeed need = ModelNeed::Required);

// The backend the command computes on, with --threads when given.
std::unique_ptr<Backend> backend_from_args(const Args& args);

}  // namespace lomo::cli
