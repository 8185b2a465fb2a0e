// `lomo memory --measure`: one real training step of the shape the planner predicted, so that
// prediction and tracked peaks can be printed side by side.
#pragma once

#include <cstddef>
#include <string>

#include "train/memory_plan.h"
#include "train/trainer.h"

namespace lomo {

struct MeasuredMemory {
  MemoryPlan peaks;     // tracked peak of each category
  size_t peak_rss = 0;    // the process's, after the step
  size_t rss_before = 0;  // the process's before the model was allocated
};

// One step (learning rate 0) of in.batch sequences of in.seq random token ids, with `opts`
// (checkpointing as in `in`), on the weights of `model_path`, or on random weights for
// in.config when `model_path` is empty.
MeasuredMemory measure_step_memory(const MemoryPlanInput& in, const TrainOptions& opts,
                                   const std::string& model_path, Backend& backend);

}  // namespace lomo
