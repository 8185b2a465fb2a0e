// The one place where the engine's working parts are made: the backend a run computes on, the
// model that runs forward and backward on it, and the trainer that steps it. Commands and
// TrainingRun go through these functions, so a change of those constructors is made here once.
#pragma once

#include <memory>
#include <string>

#include "core/memory.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/params.h"
#include "ops/backend.h"
#include "train/trainer.h"

namespace lomo {

// The backend of a run: the CPU with `threads` threads (0: all cores), or the GPU `device` names
// (cuda, cuda:N).
std::unique_ptr<Backend> make_run_backend(int threads, const std::string& device = "cpu",
                                          bool bf16_products = false);

// `config`, `params` and `backend` must outlive the model. `positions`: the longest sequence it
// will run (0: the model's max_position; LlamaModel).
std::unique_ptr<LlamaModel> make_model(const ModelConfig& config, ModelParams& params,
                                       MemoryTracker& tracker, Backend& backend,
                                       int64_t positions = 0);
// `model` must outlive the trainer.
std::unique_ptr<Trainer> make_trainer(LlamaModel& model, const TrainOptions& opts,
                                      MemoryTracker& tracker);

}  // namespace lomo
