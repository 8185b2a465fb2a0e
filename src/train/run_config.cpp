#include "train/run_config.h"

#include <algorithm>

#include "core/error.h"

namespace lomo {

CheckpointingMode parse_checkpointing_mode(const std::string& s) {
  if (s == "auto") return CheckpointingMode::Auto;
  if (s == "on") return CheckpointingMode::On;
  if (s == "off") return CheckpointingMode::Off;
  throw Error("--checkpointing: \"" + s + "\" is not one of on, off, auto");
}

const char* checkpointing_mode_name(CheckpointingMode m) {
  switch (m) {
    case CheckpointingMode::Auto:
      return "auto";
    case CheckpointingMode::On:
      return "on";
    case CheckpointingMode::Off:
      return "off";
  }
  return "?";
}

ParallelMode parse_parallel_mode(const std::string& s) {
  if (s == "none") return ParallelMode::None;
  if (s == "dp") return ParallelMode::Dp;
  if (s == "shard") return ParallelMode::Shard;
  throw Error("--parallel: \"" + s + "\" is not one of none, dp, shard");
}

const char* parallel_mode_name(ParallelMode m) {
  switch (m) {
    case ParallelMode::Dp:
      return "dp";
    case ParallelMode::Shard:
      return "shard";
    case ParallelMode::None:
      break;
  }
  return "none";
}

OutFormat parse_out_format(const std::string& s) {
  if (s == "hf") return OutFormat::Hf;
  if (s == "gguf") return OutFormat::Gguf;
  throw Error("--out-format: \"" + s + "\" is not one of hf, gguf");
}

const char* lr_schedule_name(LrSchedule s) {
  switch (s) {
    case LrSchedule::Constant:
      return "constant";
    case LrSchedule::Linear:
      return "linear";
    case LrSchedule::Cosine:
      return "cosine";
  }
  return "?";
}

double default_lr(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::AdamW:
      return 1e-5;
    case OptimizerKind::AdaLomo:
      return 5e-4;
    case OptimizerKind::Lomo:
    case OptimizerKind::Sgd:
      return 0.03;
  }
  return 0.03;
}

GgmlType RunConfig::export_type() const {
  if (gguf_type) return *gguf_type;
  switch (dtype) {
    case StorageDtype::BF16:
      return GgmlType::BF16;
    case StorageDtype::F16:
      return GgmlType::F16;
    case StorageDtype::F32:
      return GgmlType::F32;
  }
  return GgmlType::F32;
}

LoraConfig RunConfig::lora_config() const {
  LoraConfig c;
  c.rank = lora_rank;
  c.alpha = lora_alpha.value_or(2.0f * static_cast<float>(lora_rank));
  c.dropout = lora_dropout;
  c.rslora = rslora.value_or(false);
  c.targets = parse_lora_targets(lora_targets.value_or("q,v"));
  return c;
}

void check_run_config(const RunConfig& run, MemoryConvention convention) {
  if (run.steps && run.epochs) throw Error("give --steps or --epochs, not both");
  if (!run.random_config_path.empty()) {
    if (!run.model_path.empty()) {
      throw Error("give --model or --random-init, not both (--random-init makes a random model "
                  "of a config.json in the run's memory)");
    }
    if (run.save) {
      throw Error("--random-init " + run.random_config_path +
                  ": a random model has no tokenizer or source folder to save beside it; train "
                  "it with --save off (a measurement), or make it a folder first with lomo init "
                  "--config " + run.random_config_path + " --out DIR and train --model DIR");
    }
    if (run.uses_lora() || !run.resume_path.empty() || run.parallel != ParallelMode::None) {
      throw Error("--random-init trains one process's random model from scratch: without "
                  "LoRA, --resume or --parallel");
    }
  }
  if (!run.save) {
    if (!run.out_path.empty()) {
      throw Error("--save off writes nothing: drop --out " + run.out_path);
    }
    if (run.save_every > 0 || run.save_every_minutes > 0 || !run.checkpoint_dir.empty()) {
      throw Error("--save off writes nothing: drop --save-every, --save-every-minutes and "
                  "--checkpoint-dir");
    }
    if (!run.resume_path.empty()) {
      throw Error("--save off with --resume: a resumed run continues one that saves; drop "
                  "--save off (and give --out) to resume " + run.resume_path);
    }
  }
  if (run.uses_lora()) {
    if (run.lr) {
      throw Error("--lr is not used with LoRA: --base-lr sets the base model's learning rate "
                  "(0, the default: frozen, plain LoRA) and --lora-lr the adapters'");
    }
    if (run.base_lr < 0) throw Error("--base-lr must be ≥ 0 (0: the base model is frozen)");
    check_lora_optimizer(run.optimizer, run.dtype);
    parse_lora_targets(run.lora_targets.value_or("q,v"));
  }
  if (run.device != "cpu" && run.uses_lora()) {
    throw Error("--device " + run.device + " with --lora-rank: LoRA runs on the CPU only so far; "
                "use --device cpu");
  }
  if (run.ranks < 1) throw Error("the number of ranks must be at least 1");
  if (run.ranks > 1 && run.parallel == ParallelMode::None) {
    throw Error("started as " + std::to_string(run.ranks) +
                " ranks (mpirun -np " + std::to_string(run.ranks) +
                "), but --parallel is none: every rank would train alone and write the same "
                "output; give --parallel dp or shard, or start one process");
  }
  if (run.parallel != ParallelMode::None) {
    const std::string flag = std::string("--parallel ") + parallel_mode_name(run.parallel);
    if (run.uses_lora()) {
      throw Error(flag + " with LoRA is not implemented (the adapters' gradients are not "
                  "summed over ranks); train LoRA in one process");
    }
    if (run.parallel == ParallelMode::Shard && run.optimizer != OptimizerKind::Lomo &&
        run.optimizer != OptimizerKind::AdaLomo) {
      throw Error(flag + " trains with --optimizer lomo or adalomo (sharded SGD/AdamW states are "
                  "not implemented); use one of them, or --parallel dp");
    }
    if (run.batch_size < run.ranks) {
      throw Error("--batch-size " + std::to_string(run.batch_size) + " is the global batch and " +
                  std::to_string(run.ranks) + " ranks need at least one sequence each: give "
                  "--batch-size ≥ " + std::to_string(run.ranks) + ", or fewer ranks");
    }
  }
  if (run.bf16_gemm.value_or(false) && run.dtype != StorageDtype::BF16) {
    throw Error("--bf16-gemm on needs --dtype bf16 (the weights are multiplied as stored)");
  }
  if (convention == MemoryConvention::Engine) check_optimizer_storage(run.optimizer, run.dtype);
}

int64_t run_seq_len(const RunConfig& run, const ModelConfig& config) {
  const int64_t seq_len = run.seq_len.value_or(std::min<int64_t>(1024, config.max_position));
  if (seq_len < 2 || seq_len > config.max_position) {
    throw Error("--seq-len: " + std::to_string(seq_len) + " is out of range [2, " +
                std::to_string(config.max_position) + "]");
  }
  if (config.sliding_window > 0 && seq_len > config.sliding_window) {
    throw Error("--seq-len " + std::to_string(seq_len) + " exceeds the model's sliding_window " +
                std::to_string(config.sliding_window) +
                " (sliding-window attention is not supported)");
  }
  return seq_len;
}

size_t run_memory_limit(const RunConfig& run, const Backend* backend) {
  if (run.memory_limit) return *run.memory_limit;
  return backend != nullptr ? backend->memory_available() : available_memory_bytes();
}

namespace {

// plan_input's fields from the run, for either kind of device.
MemoryPlanInput plan_input_of_run(const RunConfig& run, const ModelConfig& config,
                                  int64_t longest_seq) {
  MemoryPlanInput in;
  in.config = config;
  in.optimizer = run.optimizer;
  in.dtype = run.dtype;
  in.batch = run.rank_batch();
  in.seq = longest_seq;
  in.data_parallel = run.parallel != ParallelMode::None;
  if (run.parallel == ParallelMode::Shard) in.shard_ranks = run.ranks;
  in.checkpointing =
      run.checkpointing == CheckpointingMode::Off ? Checkpointing::Off : Checkpointing::On;
  in.fused_gemm_update = run.fused_gemm_update;
  in.clip_grad_norm = run.clip_grad_norm > 0;
  in.clip_grad_value = run.clip_grad_value > 0;
  in.bf16_gemm = run.uses_bf16_gemm();
  in.activation_dtype = run.activations();
  if (run.uses_lora()) {
    in.lora = run.lora_config();
    in.base_frozen = run.base_frozen();
  }
  return in;
}

}  // namespace

MemoryPlanInput plan_input(const RunConfig& run, const ModelConfig& config, int64_t longest_seq,
                           const Backend& backend) {
  MemoryPlanInput in = plan_input_of_run(run, config, longest_seq);
  in.backend = &backend;
  return in;
}

MemoryPlanInput plan_input_for_cuda(const RunConfig& run, const ModelConfig& config,
                                    int64_t longest_seq, bool cudnn_attention) {
  MemoryPlanInput in = plan_input_of_run(run, config, longest_seq);
  in.cuda = MemoryPlanInput::CudaPlan{.cudnn = cudnn_attention};
  return in;
}

Checkpointing fit_checkpointing(CheckpointingMode mode, const MemoryPlanInput& in, size_t limit) {
  if (mode == CheckpointingMode::Auto) return choose_checkpointing(in, limit);
  return fit_head(in, mode == CheckpointingMode::Off ? Checkpointing::Off : Checkpointing::On,
                  limit);
}

nlohmann::ordered_json run_identity(const RunConfig& run, int64_t seq_len,
                                    const std::string& data_digest) {
  nlohmann::ordered_json j;
  j["model"] = run.model_path;
  j["data"] = run.data_path;
  j["data-digest"] = data_digest;
  j["task"] = run.task ? data::task_name(*run.task) : "";
  // Chat data settings, only when set (checkpoints written before they existed still match).
  if (!run.chat_template_path.empty()) j["chat-template"] = run.chat_template_path;
  if (run.chat_loss == data::ChatLoss::AllTurns) j["train-on-all-turns"] = true;
  j["optimizer"] = optimizer_name(run.optimizer);
  j["lr"] = run.peak_lr();
  j["batch-size"] = run.batch_size;
  j["seq-len"] = seq_len;
  j["clip-grad-norm"] = run.clip_grad_norm;
  j["clip-grad-value"] = run.clip_grad_value;
  j["weight-decay"] = run.weight_decay;
  j["decay-norms-biases"] = run.decay_norms_biases;
  j["lr-schedule"] = lr_schedule_name(run.lr_schedule);
  j["warmup-ratio"] = run.warmup_ratio;
  j["fused-gemm-update"] = run.fused_gemm_update;
  j["dtype"] = storage_dtype_name(run.dtype);
  j["loss-scale-init"] = run.loss_scale_init;
  j["loss-scale-window"] = run.loss_scale_window;
  j["bf16-gemm"] = run.uses_bf16_gemm();
  // Only when 16-bit (checkpoints of fp32 runs written before it existed still match).
  if (run.activations() != StorageDtype::F32) {
    j["activation-dtype"] = storage_dtype_name(run.activations());
  }
  j["rounding"] = run.rounding == Rounding::Nearest ? "nearest" : "stochastic";
  j["shuffle"] = run.shuffle == Shuffle::On;
  j["seed"] = run.seed;
  // LoRA settings, only with LoRA (checkpoints written before it existed still match).
  if (run.uses_lora()) {
    const LoraConfig l = run.lora_config();
    j["lora-rank"] = l.rank;
    j["lora-alpha"] = l.alpha;
    j["lora-dropout"] = l.dropout;
    j["lora-targets"] = lora_targets_string(l.targets);
    j["rslora"] = l.rslora;
    j["lora-lr"] = run.lora_lr;
    j["base-lr"] = run.base_lr;
    j["lora-weight-decay"] = run.lora_weight_decay;
    j["lora-resume"] = run.lora_resume_path;
  }
  return j;
}

TrainOptions train_options(const RunConfig& run, Checkpointing checkpointing) {
  TrainOptions o;
  o.optimizer = run.optimizer;
  o.weight_decay = run.weight_decay;
  o.clip_grad_norm = run.clip_grad_norm;
  o.clip_grad_value = run.clip_grad_value;
  o.checkpointing = checkpointing;
  o.decay_norms_and_biases = run.decay_norms_biases;
  o.fused_gemm_update = run.fused_gemm_update;
  o.bf16_gemm = run.uses_bf16_gemm();
  o.activation_dtype = run.activations();
  o.rounding = run.rounding;
  o.seed = run.seed;
  o.loss_scale_init = run.loss_scale_init;
  o.loss_scale_window = run.loss_scale_window;
  o.base_frozen = run.base_frozen();
  o.lora_weight_decay = run.lora_weight_decay;
  return o;
}

}  // namespace lomo
