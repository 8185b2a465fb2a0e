#include "train/memory_measure.h"

#include <optional>
#include <vector>

#include "core/memory.h"
#include "core/rng.h"
#include "dist/communicator.h"
#include "model/init.h"
#include "model/loader.h"
#include "train/engine.h"

namespace lomo {

MeasuredMemory measure_step_memory(const MemoryPlanInput& in, const TrainOptions& opts,
                                   const std::string& model_path, Backend& backend) {
  const size_t rss_before = process_rss_bytes();
  MemoryTracker tracker;
  Model model = model_path.empty() ? Model{in.config, ModelParams(in.config, tracker, in.dtype)}
                                   : load_model(model_path, tracker, in.dtype);
  if (model_path.empty()) init_params(model.config, model.params, 0, backend);
  std::vector<Sequence> seqs(in.batch);
  for (int64_t b = 0; b < in.batch; ++b) {
    for (int64_t t = 0; t < in.seq; ++t) {
      seqs[b].ids.push_back(
          static_cast<int32_t>(counter_random(1, b, t) % static_cast<uint64_t>(in.config.vocab)));
    }
  }
  const auto net = make_model(model.config, model.params, tracker, backend, in.seq);
  TrainOptions o = opts;
  o.checkpointing = in.checkpointing;
  std::optional<LoraAdapters> lora;  // the plan's adapters, PEFT-initialised
  if (in.lora.enabled()) {
    lora.emplace(in.lora, in.config, tracker);
    lora->init(0);
    o.lora = &*lora;
    o.base_frozen = in.base_frozen;
  }
  // --parallel dp: one rank's step, its sums over itself (the memory is the rank's either way).
  LocalCommunicator one_rank;
  if (in.data_parallel) o.data_parallel = &one_rank;
  const auto trainer = make_trainer(*net, o, tracker);
  trainer->step(make_batch(seqs), 0.0, 1);
  MeasuredMemory m;
  m.peaks = {tracker.peak(MemCategory::Parameters), tracker.peak(MemCategory::Gradients),
             tracker.peak(MemCategory::OptimizerStates), tracker.peak(MemCategory::Activations),
             tracker.peak(MemCategory::Workspace)};
  m.peak_rss = process_peak_rss_bytes();
  m.rss_before = rss_before;
  return m;
}

}  // namespace lomo
