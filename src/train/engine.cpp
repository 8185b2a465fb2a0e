#include "train/engine.h"

#include <omp.h>

namespace lomo {

void set_threads(int n) {
  omp_set_num_threads(n);
}

int thread_count() {
  return omp_get_max_threads();
}

std::unique_ptr<LlamaModel> make_model(const ModelConfig& config, ModelParams& params,
                                       MemoryTracker& tracker) {
  return std::make_unique<LlamaModel>(config, params, tracker);
}

std::unique_ptr<Trainer> make_trainer(LlamaModel& model, const TrainOptions& opts,
                                      MemoryTracker& tracker) {
  return std::make_unique<Trainer>(model, opts, tracker);
}

}  // namespace lomo
