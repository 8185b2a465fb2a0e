// The one place where the engine's working parts are made: the thread count, the model that runs
// forward and backward, and the trainer that steps it. Commands and TrainingRun go through these
// functions, so a change of those constructors (a backend to run on, the thread count moving into
// it) is made here once.
#pragma once

#include <memory>

#include "core/memory.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/params.h"
#include "train/trainer.h"

namespace lomo {

// Threads for the parallel loops and GEMMs of this process (n ≥ 1).
void set_threads(int n);
// The threads a parallel region gets now (all cores unless set_threads was called).
int thread_count();

// `config` and `params` must outlive the model.
std::unique_ptr<LlamaModel> make_model(const ModelConfig& config, ModelParams& params,
                                       MemoryTracker& tracker);
// `model` must outlive the trainer.
std::unique_ptr<Trainer> make_trainer(LlamaModel& model, const TrainOptions& opts,
                                      MemoryTracker& tracker);

}  // namespace lomo
