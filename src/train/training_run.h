// A training run as one object, outside any command line: `lomo train` is this class driven by
// flags, and tests drive it directly.
//
//   TrainingRun run(config, stdout);
//   run.prepare();  // model config, tokenizer, data, eval data, the memory plan: no weight read
//   run.load();     // weights, model, trainer
//   run.train();    // the steps, evaluations, JSONL log, profile
//   run.save();     // the model and memory.json, into the output folder at once
//
// prepare() refuses a run that the memory plan says will not fit, before any weight is read, and
// the output folder is checked (not created) first, so a run that fails leaves nothing behind.
// Progress goes to the FILE* given, one line per event, in the format `lomo train` prints (bench
// scripts and tests read it).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "core/memory.h"
#include "core/profile.h"
#include "core/progress.h"
#include "data/dataset.h"
#include "dist/param_shards.h"
#include "dist/world.h"
#include "io/output_dir.h"
#include "model/llama.h"
#include "model/loader.h"
#include "model/lora.h"
#include "optim/schedule.h"
#include "text/tokenizer.h"
#include "train/batch_order.h"
#include "train/checkpoint.h"
#include "train/memory_plan.h"
#include "train/run_config.h"
#include "train/tensorboard_log.h"
#include "train/trainer.h"

namespace lomo {

// What train() saw: loss of the first and last step; the evaluations (NaN without eval data):
// accuracy with a task, else mean loss, before training, after the last step and the best.
struct TrainSummary {
  static constexpr double kNone = std::numeric_limits<double>::quiet_NaN();
  int64_t steps = 0, tokens = 0;
  double seconds = 0;
  double first_loss = kNone, last_loss = kNone;
  double first_eval = kNone, last_eval = kNone, best_eval = kNone;
  int64_t best_eval_step = -1;
  // Stopped by request_stop() (SIGINT/SIGTERM in the CLI) before the last step, after writing
  // a checkpoint; save() must not be called then.
  bool interrupted = false;
  std::string last_checkpoint;  // the newest checkpoint written, or ""
  double comm_seconds = 0;      // data parallel: in the gradient sums over ranks
};

class TrainingRun {
 public:
  // `progress` (e.g. stdout) must outlive the run; it is flushed after every line.
  TrainingRun(RunConfig config, std::FILE* progress);
  ~TrainingRun();
  TrainingRun(const TrainingRun&) = delete;
  TrainingRun& operator=(const TrainingRun&) = delete;

  void prepare();
  void load();
  const TrainSummary& train();
  void save();

  // Set (from a signal handler too) to stop after the current step with a checkpoint. With
  // several ranks the run stops when any rank's flag is set, all at the same step.
  void set_stop_flag(const std::atomic<bool>* stop) { stop_ = stop; }
  // The ranks of this run (dist/world.h; outliving the run), before prepare(); without this call
  // the run is alone. Several ranks need --parallel dp: each runs its share of every batch; rank
  // 0 alone prints, logs, evaluates, writes checkpoints and saves (give the other ranks a null
  // progress stream, e.g. /dev/null).
  void set_world(World& world);

  const RunConfig& config() const { return run_; }
  const MemoryPlanInput& plan_input() const { return plan_in_; }  // after prepare()
  const MemoryPlan& plan() const { return plan_; }                // after prepare()
  const MemoryTracker& tracker() const { return tracker_; }
  int64_t total_steps() const { return total_steps_; }  // after prepare()

 private:
  enum class Stage { New, Prepared, Loaded, Trained, Saved };
  void expect(Stage s, const char* call) const;
  void plan_and_check(size_t limit);
  void prepare_lora();
  void evaluate(int64_t step);
  void log_json(const std::string& line);
  void prepare_checkpoints();
  // Every rank calls it (sharded, the gather is a collective); rank 0 writes.
  void save_checkpoint(int64_t step);
  void write_checkpoint_now(int64_t step);  // rank 0, the whole model in place
  bool is_root() const { return world_->rank() == 0; }
  // This rank's share of the global batch `seqs` (all of it alone).
  Batch rank_batch(const std::vector<Sequence>& seqs) const;

  RunConfig run_;
  std::FILE* out_;
  LiveLine line_;  // the step line and the progress of loading, evaluation and saving
  Stage stage_ = Stage::New;

  const std::atomic<bool>* stop_ = nullptr;
  std::unique_ptr<World> own_world_;  // alone, when set_world() was not called
  World* world_ = nullptr;
  Communicator* grad_comm_ = nullptr;  // --parallel dp/shard: reduces gradients in the backend's
                                       // memory

  // prepare()
  std::unique_ptr<Backend> backend_;
  nlohmann::ordered_json identity_;  // run_identity(): what a checkpoint must match
  std::string checkpoint_dir_;
  bool made_checkpoint_dir_ = false;
  std::string resume_from_;  // the checkpoint resumed, or ""
  CheckpointMeta resume_meta_;
  int64_t start_step_ = 0;
  std::unique_ptr<OutputDir> out_dir_;
  std::ofstream log_;
  std::unique_ptr<TensorBoardLog> tensorboard_;  // --log-dir
  ModelConfig model_config_;
  int64_t seq_len_ = 0;
  std::unique_ptr<text::Tokenizer> tok_;
  data::Dataset data_;
  std::vector<data::ChoiceExample> eval_choices_;  // with a task
  data::Dataset eval_set_;                         // without
  std::unique_ptr<BatchOrder> order_;
  int64_t total_steps_ = 0, eval_every_ = 0;
  Schedule schedule_;
  Schedule lora_schedule_;  // the adapters' learning rate, with LoRA
  MemoryPlanInput plan_in_;
  MemoryPlan plan_;

  // load()
  MemoryTracker tracker_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<LoraAdapters> lora_;  // with LoRA
  std::unique_ptr<ParamShards> shards_;  // --parallel shard: the model's residency
  nlohmann::json trained_memory_;  // memory.json: the tracked peaks when training ended
  std::unique_ptr<LlamaModel> net_;
  std::unique_ptr<Trainer> trainer_;
  std::unique_ptr<StepProfile> profile_;

  TrainSummary summary_;
};

}  // namespace lomo
