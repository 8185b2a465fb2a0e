#include "train/engine.h"

namespace lomo {

std::unique_ptr<Backend> make_run_backend(int threads, const std::string& device,
                                          bool bf16_products) {
  BackendOptions o;
  o.threads = threads;
  o.device = device;
  o.bf16_products = bf16_products;
  return make_backend(o);
}

std::unique_ptr<LlamaModel> make_model(const ModelConfig& config, ModelParams& params,
                                       MemoryTracker& tracker, Backend& backend,
                                       int64_t positions) {
  return std::make_unique<LlamaModel>(config, params, tracker, backend, positions);
}

std::unique_ptr<Trainer> make_trainer(LlamaModel& model, const TrainOptions& opts,
                                      MemoryTracker& tracker) {
  return std::make_unique<Trainer>(model, opts, tracker);
}

}  // namespace lomo
