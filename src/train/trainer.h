// One optimisation step, for every optimizer. LOMO runs its update inside backward through a
// sink; with global-norm clipping it runs backward twice (design §2 rule 6): pass 1 with the
// norm sink (nothing updated), pass 2, on recomputed activations, with the update sink scaled by
// min(1, C / (‖g‖ + 1e-6)). SGD and AdamW store every gradient and step after backward.
#pragma once

#include <cstdint>
#include <memory>

#include "core/memory.h"
#include "dist/communicator.h"
#include "dist/param_shards.h"
#include "dist/shard_sink.h"
#include "model/llama.h"
#include "model/lora.h"
#include "optim/adalomo.h"
#include "optim/schedule.h"
#include "optim/sinks.h"

namespace lomo {

enum class OptimizerKind { Lomo, AdaLomo, Sgd, AdamW };
OptimizerKind parse_optimizer(const std::string& s);
const char* optimizer_name(OptimizerKind k);

struct TrainOptions {
  OptimizerKind optimizer = OptimizerKind::Lomo;
  float weight_decay = 0;
  float clip_grad_norm = 0;   // ≤ 0: off
  float clip_grad_value = 0;  // ≤ 0: off
  Checkpointing checkpointing = Checkpointing::On;
  bool decay_norms_and_biases = true;
  // LOMO only: update linear weights inside their weight-gradient GEMM (no gradient buffer).
  // Falls back to the buffered path when clip-by-value needs the materialised gradient.
  bool fused_gemm_update = false;
  // bf16 parameters: the linear layers' products in bf16 (weights as stored, activations
  // rounded to bf16, fp32 accumulation) instead of fp32 products on fp32 views.
  bool bf16_gemm = false;
  // The block inputs (the residual stream between blocks, what checkpointing keeps) stored in
  // fp32, bf16 or fp16 (LlamaModel::set_activation_dtype); every product and update stays fp32.
  StorageDtype activation_dtype = StorageDtype::F32;
  // Write-back of bf16 parameters; the seed feeds the counter-based stochastic rounding.
  Rounding rounding = Rounding::Stochastic;
  uint64_t seed = 0;
  // fp16 parameters: dynamic loss scaling (design §2 rule 7). The loss is multiplied by S and
  // each gradient divided by S in fp32; pass 1 (the norm pass) finds any inf/NaN before a
  // parameter is touched, skips the step and halves S; after `window` clean steps S doubles.
  double loss_scale_init = 65536.0;
  int64_t loss_scale_window = 1000;
  // LoRA (model/lora.h; owned by the caller, outliving the trainer): the adapters are trained by
  // AdamW with torch's defaults (β 0.9 / 0.999, ε 1e-8) at the adapter lr step() is given, and
  // lora_weight_decay; the base by `optimizer` (LOMO or AdaLomo), or not at all when base_frozen.
  LoraAdapters* lora = nullptr;
  bool base_frozen = false;
  float lora_weight_decay = 0;
  // Data parallelism (dist/reducing_sink.h; owned by the caller): each gradient is summed over
  // the communicator's ranks before it is used, and the loss too. Each rank's batch is its share
  // of the global batch, with Batch::loss_denominator the global batch's loss tokens.
  Communicator* data_parallel = nullptr;
  // Sharded parameters (dist/param_shards.h; owned by the caller, set as the model's residency,
  // with data_parallel its communicator): each gradient is reduce-scattered and each rank updates
  // its shard (LOMO), or all-reduced and applied to the gathered copy, of which each rank keeps
  // its shard (AdaLomo, dist/shard_sink.h). Without LoRA; the norm pass all-reduces.
  ParamShards* shards = nullptr;
};

// Whether this run's block linear weights (takes_fused_linear_update) take LOMO's zero-buffer
// update, and whether no gradient is materialised at all. The one statement of the rule, read by
// the trainer and the memory planner:
//  * the update is fused for LOMO with --fused-gemm-update, unless clip-by-value needs the
//    materialised gradient, or data parallelism sums it over ranks;
//  * no buffer is needed unless a norm pass (--clip-grad-norm, or fp16's overflow check)
//    materialises every gradient first. Then every matrix takes the update where its gradient
//    is made (takes_fused_update): the LM head too, which therefore runs in two passes (its
//    one-pass schedule would need the whole (V, d) gradient), and the embedding, tied or not.
//    What stays buffered, and why, is said by `lomo memory`.
struct ZeroBufferRule {
  bool fused_update = false;
  bool no_buffer = false;
};
struct ZeroBufferInputs {
  OptimizerKind optimizer = OptimizerKind::Lomo;
  bool fused_gemm_update = true;
  bool data_parallel = false;    // --parallel dp: gradients are summed over ranks, so they exist
  bool clip_grad_value = false;  // --clip-grad-value > 0
  bool clip_grad_norm = false;   // --clip-grad-norm > 0
  StorageDtype dtype = StorageDtype::F32;
};
ZeroBufferRule zero_buffer_rule(const ZeroBufferInputs& in);

// SGD and AdamW with 16-bit parameters would need fp32 master weights, which are not
// implemented: throws lomo::Error saying what to use instead. One rule for the trainer, the
// memory planner and the flag check, so that each refuses what the others refuse.
void check_optimizer_storage(OptimizerKind optimizer, StorageDtype dtype);
// LoRA's base is trained by LOMO or AdaLomo (SGD and AdamW would store every base gradient), in
// fp32 or bf16 (fp16's loss scaling is not implemented with adapters): throws lomo::Error.
void check_lora_optimizer(OptimizerKind optimizer, StorageDtype dtype);

struct StepResult {
  double loss = 0;
  double grad_norm = -1;  // measured only when clipping by norm
  double clip_coef = 1;
  bool skipped = false;   // fp16: the step overflowed and changed nothing
  double loss_scale = 0;  // fp16: the scale after this step
  double comm_seconds = 0;  // data parallel: time in the gradient sums over ranks
};

// Everything a Trainer carries from one step to the next besides the parameters: what a
// checkpoint must hold for a resumed run to equal the uninterrupted one bit for bit.
struct TrainerCounters {
  int64_t adalomo_steps = 0;  // AdaLomo's t (β = 1 − t^−0.8)
  int64_t adamw_steps = 0;    // AdamW's t (bias corrections); the adapters' AdamW with LoRA
  double loss_scale = 1;      // fp16
  int64_t clean_steps = 0;    // fp16: clean steps since the scale last changed
  bool operator==(const TrainerCounters&) const = default;
};
struct TrainerStateTensor {
  // "adamw.m.<parameter>", "adamw.v.<parameter>", "adalomo.<parameter>"; with LoRA also
  // "lora.<adapter>" (the adapters themselves) and "adamw.m.<adapter>", "adamw.v.<adapter>"
  std::string name;
  Buffer* buffer;    // fp32, in the backend's memory
};

class Trainer {
 public:
  Trainer(LlamaModel& model, const TrainOptions& opts, MemoryTracker& tracker);
  // lr: the base model's learning rate at this step; adapter_lr: LoRA's (ignored without LoRA).
  StepResult step(const Batch& batch, double lr, int64_t step_index, double adapter_lr = 0);

  TrainerCounters counters() const;
  void set_counters(const TrainerCounters& c);
  // The optimizer states (none for LOMO and SGD).
  std::vector<TrainerStateTensor> state_tensors();
  LlamaModel& model() { return model_; }

 private:
  StepResult run_step(const Batch& batch, double lr, int64_t step_index);
  StepResult run_fp16_step(const Batch& batch, LomoUpdate u, int64_t step_index);
  // One forward and backward into `base` (null: a frozen base), wrapped for LoRA's adapters and
  // for data parallelism; returns the batch's loss (summed over ranks).
  // norm_pass: `base` measures whole gradients (NormSink), which sharding then all-reduces.
  double pass(const Batch& batch, GradSink* base, float grad_scale = 1.0f, bool norm_pass = false);
  // After backward: the adapters' AdamW step at adapter_lr, with the run's clipping.
  void step_adapters(double adapter_lr, double grad_coef, int64_t step_index);
  // Σ clamp(g)² over the adapters' gradients (clamped in place): their share of the global norm.
  // Throws NonFiniteError naming the first adapter whose gradient holds inf or NaN.
  double adapter_sum_squares(int64_t step_index);
  ZeroBufferRule zero_buffer() const;
  // After an update pass of LomoSink or AdaLomoSink: reads the pass's gradient checks (one
  // synchronisation) and throws NonFiniteError naming the step and the first bad tensor.
  void check_update_pass(int64_t step_index);
  // The run's checkpointing, with the two-pass LM head whenever the head takes the zero-buffer
  // update (the planner's fit_head makes the same choice).
  Checkpointing checkpointing() const;
  LlamaModel& model_;
  TrainOptions opts_;
  std::unique_ptr<ReusableGradients> reusable_;
  std::unique_ptr<GradientChecks> checks_;  // with reusable_: the sinks' per-pass checks
  std::unique_ptr<StoredGradients> stored_;
  std::unique_ptr<AdamW> adamw_;
  std::unique_ptr<AdaLomoStates> adalomo_;
  std::unique_ptr<ShardGradients> shard_grads_;  // sharded: the whole gradients backward writes
  std::unique_ptr<StoredGradients> lora_grads_;
  std::unique_ptr<AdamW> lora_adamw_;
  int64_t adalomo_t_ = 0;
  bool fp16_ = false;
  double loss_scale_ = 1;
  int64_t clean_steps_ = 0;
  double comm_seconds_ = 0;  // this step's, data parallel

 public:
  double loss_scale() const { return loss_scale_; }
};

}  // namespace lomo
