// A training run's configuration: every option of `lomo train` as a typed field, the rules that
// tie options together, and the memory planner's input derived from them. `lomo train` and
// `lomo memory` both read their flags into a RunConfig and plan through plan_input() and
// fit_checkpointing(), so what memory predicts is what train plans, by construction.
//
// Field defaults are the flags' defaults (cli/run_flags.cpp declares the flags; a test checks
// that parsing no flags gives RunConfig{}). std::nullopt marks a default that depends on
// something else: the optimizer (lr), the model (seq_len), the machine (memory_limit, threads).
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/half.h"
#include "data/chat.h"
#include "data/tasks.h"
#include "io/ggml_quants.h"
#include "model/config.h"
#include "model/llama.h"
#include "optim/schedule.h"
#include "train/batch_order.h"
#include "train/evaluate.h"
#include "train/memory_plan.h"
#include "train/trainer.h"

namespace lomo {

// --checkpointing: which blocks keep their activations. Auto keeps as many as --memory-limit
// allows; in every mode the LM head runs in one pass when its logits tile fits.
enum class CheckpointingMode { Auto, On, Off };
CheckpointingMode parse_checkpointing_mode(const std::string& s);  // "auto", "on", "off"
const char* checkpointing_mode_name(CheckpointingMode m);

// --parallel: how the ranks of a run launched by mpirun share the work (docs/distributed.md).
// None: one process; Dp: data parallelism, every rank a full replica running its share of each
// batch, each gradient summed over ranks before the update; Shard: the same batches, with every
// tensor cut into one shard per rank (dist/param_shards.h), each gradient reduce-scattered.
enum class ParallelMode { None, Dp, Shard };
ParallelMode parse_parallel_mode(const std::string& s);  // "none", "dp", "shard"
const char* parallel_mode_name(ParallelMode m);

enum class OutFormat { Hf, Gguf };  // a Hugging Face folder, or OUT/model.gguf
OutFormat parse_out_format(const std::string& s);

const char* lr_schedule_name(LrSchedule s);  // "constant", "linear", "cosine"
// The peak learning rate of an optimizer when none is given: the paper's 0.03 for LOMO and SGD,
// AdaLomo's 5e-4, and 1e-5 for AdamW.
double default_lr(OptimizerKind k);

struct RunConfig {
  // What to train and where the result goes.
  std::string model_path;          // Hugging Face folder or .gguf file
  // Instead of model_path: a config.json whose random model (init_params' weights for `seed`)
  // is made in the run's memory (the GPU's), with no file and no tokenizer.
  std::string random_config_path;
  std::string data_path;           // JSONL (data/dataset.h)
  std::string out_path;            // a folder that does not exist, or is empty
  bool save = true;                // false: write nothing (no model, checkpoint or out_path)
  std::optional<data::Task> task;  // read data (and eval data) as this task's fields
  std::string chat_template_path;  // --chat-template: renders {"messages"} data instead of the model's
  data::ChatLoss chat_loss = data::ChatLoss::AssistantOnly;  // --train-on-all-turns: AllTurns

  // Evaluation: accuracy with a task, else mean loss; before the first step, every eval_every
  // steps and after the last.
  std::string eval_data_path;         // empty: no evaluation
  std::optional<int64_t> eval_every;  // nullopt: once per epoch
  Normalize normalize = Normalize::None;

  // Optimisation.
  OptimizerKind optimizer = OptimizerKind::Lomo;
  std::optional<double> lr;  // peak; nullopt: default_lr(optimizer), see peak_lr()
  std::optional<int64_t> steps;
  std::optional<int64_t> epochs;  // nullopt: 1, unless steps is given (not both)
  int64_t batch_size = 4;
  std::optional<int64_t> seq_len;  // nullopt: min(1024, context); see run_seq_len()
  float clip_grad_norm = 0;        // ≤ 0: off
  float clip_grad_value = 0;       // ≤ 0: off
  float weight_decay = 0;
  bool decay_norms_biases = true;
  LrSchedule lr_schedule = LrSchedule::Linear;
  double warmup_ratio = 0.1;
  bool fused_gemm_update = true;

  // Memory and precision.
  std::optional<size_t> memory_limit;  // bytes, 0 = no limit; nullopt: the RAM available
  StorageDtype dtype = StorageDtype::F32;
  double loss_scale_init = 65536;  // fp16
  int64_t loss_scale_window = 1000;
  // nullopt: on where it applies (bf16 storage); true without bf16 storage is an error.
  std::optional<bool> bf16_gemm;
  // The block inputs' storage; nullopt: bf16 with --dtype bf16, else fp32 (activations()).
  std::optional<StorageDtype> activation_dtype;
  Rounding rounding = Rounding::Stochastic;
  CheckpointingMode checkpointing = CheckpointingMode::Auto;

  // Order, machine, reporting, output.
  Shuffle shuffle = Shuffle::On;
  uint64_t seed = 0;
  int threads = 0;       // 0: all cores
  std::string device = "cpu";  // cpu, cuda or cuda:N (ops/backend.h: make_backend)
  ParallelMode parallel = ParallelMode::None;
  // The number of ranks: the launch's for train (dist/world.h), --world-size for memory. With
  // --parallel dp each rank runs batch_size / ranks sequences (rank_batch()).
  int ranks = 1;
  std::string log_path;  // empty: no JSONL log
  std::string log_dir;   // empty: no TensorBoard event files (train/tensorboard_log.h)
  bool profile = false;  // time each step by phase
  OutFormat out_format = OutFormat::Hf;
  std::optional<GgmlType> gguf_type;  // nullopt: the training dtype

  // Checkpoints (train/checkpoint.h): every save_every steps and/or save_every_minutes, and on
  // SIGINT/SIGTERM; the newest `keep` are kept in checkpoint_dir.
  int64_t save_every = 0;         // 0: off
  double save_every_minutes = 0;  // 0: off
  int64_t keep = 2;
  std::string checkpoint_dir;  // empty: out_path + ".checkpoints"
  std::string resume_path;     // a checkpoint, or a folder of them; empty: a new run
  std::string checkpoints() const {
    return checkpoint_dir.empty() ? out_path + ".checkpoints" : checkpoint_dir;
  }

  // LoRA (model/lora.h): adapters of rank lora_rank on lora_targets, trained by AdamW at
  // lora_lr; the base model by `optimizer` at base_lr (0: frozen, plain LoRA). Both follow
  // lr_schedule. lora_resume_path: start from a PEFT adapter folder (its rank, alpha, targets
  // and rsLoRA setting; prepare() reads them). merge: save base + adapters as one model.
  int64_t lora_rank = 0;  // 0: no LoRA (unless lora_resume_path)
  std::optional<float> lora_alpha;  // nullopt: 2 × rank
  float lora_dropout = 0;
  std::optional<std::string> lora_targets;  // nullopt: "q,v" (kept apart from a given "q,v", which
  std::optional<bool> rslora;               // --lora-resume must check against its folder)
  double lora_lr = 2e-4;
  double base_lr = 0;
  float lora_weight_decay = 0;
  std::string lora_resume_path;
  bool merge = false;
  bool uses_lora() const { return lora_rank > 0 || !lora_resume_path.empty(); }
  bool base_frozen() const { return uses_lora() && base_lr == 0; }
  LoraConfig lora_config() const;  // uses_lora() only

  // The base model's peak learning rate: base_lr with LoRA.
  double peak_lr() const { return uses_lora() ? base_lr : lr.value_or(default_lr(optimizer)); }
  // The sequences one rank runs per step: all of them alone, its largest share in data parallel.
  int64_t rank_batch() const {
    return parallel != ParallelMode::None ? (batch_size + ranks - 1) / ranks : batch_size;
  }
  bool uses_bf16_gemm() const { return bf16_gemm.value_or(true) && dtype == StorageDtype::BF16; }
  StorageDtype activations() const {
    return activation_dtype.value_or(dtype == StorageDtype::BF16 ? StorageDtype::BF16
                                                                 : StorageDtype::F32);
  }
  GgmlType export_type() const;

  bool operator==(const RunConfig&) const = default;
};

// The rules between options that hold whatever the model: throws lomo::Error with the message
// `lomo train` has always given (e.g. "give --steps or --epochs, not both"), and the optimizer
// and dtype pairs the engine refuses (check_optimizer_storage) unless `convention` is the
// paper's, which `lomo memory --convention paper` plans without running.
void check_run_config(const RunConfig& run,
                      MemoryConvention convention = MemoryConvention::Engine);

// seq_len, or min(1024, context); throws when it is outside [2, context] or beyond a sliding
// window (not supported).
int64_t run_seq_len(const RunConfig& run, const ModelConfig& config);

// The memory limit the plan must fit: memory_limit, else what the run's device has free now
// (`backend`'s memory_available(); the host's RAM without one). 0 = no limit.
size_t run_memory_limit(const RunConfig& run, const Backend* backend = nullptr);

// The planner's input for a step of batch_size sequences of `longest_seq` tokens (train: the
// longest example after truncation; memory: the sequence length). Its checkpointing is the blocks
// the mode names before any fitting (auto: all recomputed); fit_checkpointing() chooses.
MemoryPlanInput plan_input(const RunConfig& run, const ModelConfig& config, int64_t longest_seq,
                           const Backend& backend);
// The same for a GPU run (run.device cuda) planned without its backend: the CUDA backend's
// declarations (ops/cuda/device_plan.h), attention through cuDNN when `cudnn_attention`.
MemoryPlanInput plan_input_for_cuda(const RunConfig& run, const ModelConfig& config,
                                    int64_t longest_seq, bool cudnn_attention);

// The checkpointing the run uses: auto → choose_checkpointing (the most blocks kept that fit);
// on/off → those blocks, with the one-pass LM head if it fits (fit_head).
Checkpointing fit_checkpointing(CheckpointingMode mode, const MemoryPlanInput& in, size_t limit);

// The settings that decide a run's numbers, by flag name, resolved (the peak lr, the sequence
// length, bf16 products); `data_digest` identifies the data file's bytes. A resumed run must
// match its checkpoint's on every one; --steps/--epochs, threads, output, logging and
// evaluation may change.
nlohmann::ordered_json run_identity(const RunConfig& run, int64_t seq_len,
                                    const std::string& data_digest);

// The trainer's options; `checkpointing` as fit_checkpointing() chose it.
TrainOptions train_options(const RunConfig& run, Checkpointing checkpointing);

}  // namespace lomo
