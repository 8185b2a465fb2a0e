#include "cli/run_flags.h"

#include <cstdint>

#include "cli/preamble.h"
#include "core/error.h"
#include "model/export.h"

namespace lomo::cli {

namespace {

// Shared: `lomo memory` declares it too (it changes what a step allocates, or how many threads
// share the attention scratch); TrainOnly: it does not; MemoryOnly: what train reads elsewhere
// (the number of ranks comes from the launch).
enum class Scope { Shared, TrainOnly, MemoryOnly };

struct RunFlag {
  Flag flag;
  Scope scope;
};

std::vector<RunFlag> table() {
  const Scope S = Scope::Shared, T = Scope::TrainOnly, M = Scope::MemoryOnly;
  return {
      {model_flag("Hugging Face model folder or .gguf file"), S},
      {{"data", "FILE",
        "training data, JSONL: {\"text\"}, {\"prompt\", \"completion\"}, {\"messages\"}, "
        "{\"input_ids\"}, or a task's fields",
        "", true},
       T},
      {{"out", "DIR", "where the trained model goes (must not exist, or be empty)", ""}, T},
      {{"save", "on|off", "off: write nothing (no --out, no checkpoints), a measurement run",
        "on"},
       T},
      {{"random-init", "FILE",
        "instead of --model: a random model of this config.json (lomo init's weights for --seed), "
        "made in the run's memory (the GPU's with --device cuda) with no file: for shapes no "
        "model file is at hand (LLaMA-65B on one GPU). No tokenizer: --data must hold "
        "input_ids. Needs --save off",
        ""},
       T},
      {{"task", "NAME",
        "read --data (and --eval-data) as boolq, rte, wic, wsc, multirc, copa or choice; train "
        "on prompt + the labelled answer",
        ""},
       T},
      {{"eval-data", "FILE", "evaluate on FILE: accuracy with --task, else mean loss", ""}, T},
      {{"chat-template", "FILE",
        "render {\"messages\"} data with this Jinja chat template (a text file, or a JSON file "
        "with \"chat_template\") instead of the model's own",
        ""},
       T},
      {{"train-on-all-turns", "",
        "{\"messages\"} data: loss on every token, not only the assistant turns", ""},
       T},
      {{"eval-every", "N", "evaluate every N steps (and before the first and after the last)",
        "once per epoch"},
       T},
      {{"normalize", "none|tokens", "with --task: divide each candidate's NLL by its token count",
        "none"},
       T},
      {{"optimizer", "NAME",
        "lomo (fused SGD), adalomo (fused, adaptive), sgd or adamw (classic baselines)", "lomo"},
       S},
      {{"lr", "F", "peak learning rate",
        "0.03 for lomo/sgd (the paper's), 5e-4 adalomo, 1e-5 adamw"},
       T},
      {{"lora-rank", "R",
        "train LoRA adapters of rank R (PEFT's layout) beside the base model; 0 = off", "0"},
       S},
      {{"lora-alpha", "F", "LoRA scaling numerator: the adapters add (alpha/r)·B·A·x",
        "2 × rank"},
       T},
      {{"lora-dropout", "F", "dropout on the adapters' input, in training", "0"}, S},
      {{"lora-targets", "LIST",
        "the linear layers that get adapters: any of q,k,v,o,gate,up,down, or all", "q,v"},
       S},
      {{"rslora", "on|off", "rank-stabilised LoRA: scaling alpha/sqrt(r) instead of alpha/r",
        "off"},
       T},
      {{"lora-lr", "F", "the adapters' peak learning rate (AdamW, beta 0.9/0.999, eps 1e-8)",
        "2e-4"},
       T},
      {{"base-lr", "F",
        "with LoRA: the base model's peak learning rate (--optimizer lomo or adalomo, inside "
        "backward, as in the paper's LoRA+LOMO); 0 = frozen base, plain LoRA",
        "0"},
       S},
      {{"lora-weight-decay", "F", "the adapters' AdamW weight decay", "0"}, T},
      {{"lora-resume", "DIR",
        "start the adapters from a PEFT adapter folder (its rank, alpha, targets and rsLoRA "
        "setting)",
        ""},
       T},
      {{"merge", "",
        "with LoRA: save base + adapters as one model (--out-format hf or gguf) instead of the "
        "adapter folder",
        ""},
       T},
      {{"steps", "N", "number of optimisation steps (instead of --epochs)", ""}, T},
      {{"epochs", "N", "passes over the data (steps = ceil(epochs·lines / batch))", "1"}, T},
      {{"batch-size", "N", "sequences per step", "4"}, S},
      {{"seq-len", "N", "tokens per sequence at most: longer sequences are truncated (and counted)",
        "min(1024, context)"},
       S},
      {{"clip-grad-norm", "F", "clip the global gradient norm to F (two backward passes); 0 = off",
        "0"},
       S},
      {{"clip-grad-value", "F", "clamp every gradient element to [-F, F]; 0 = off", "0"}, S},
      {{"weight-decay", "F", "p <- p(1 - lr*wd) - lr*g", "0"}, T},
      {{"decay-norms-biases", "on|off", "apply weight decay to norm weights and biases too", "on"},
       T},
      {{"lr-schedule", "S", "constant, linear (warm-up then linear to 0) or cosine", "linear"}, T},
      {{"warmup-ratio", "F", "fraction of the steps spent warming up", "0.1"}, T},
      {{"fused-gemm-update", "on|off",
        "lomo: update linear weights inside their gradient GEMM, no gradient buffer (off with "
        "--clip-grad-value)",
        "on"},
       S},
      {{"memory-limit", "BYTES",
        "the memory the run must fit: --checkpointing and the LM head are planned within it, "
        "and train refuses to start when the prediction exceeds it (e.g. 20G, 512M; 0 = no "
        "limit)",
        "available RAM (a GPU run: the GPU's free memory)"},
       S},
      {{"dtype", "D",
        "parameter storage: fp32, bf16 or fp16 (compute and updates in fp32 either way)", "fp32"},
       S},
      {{"loss-scale-init", "S", "fp16: initial dynamic loss scale", "65536"}, T},
      {{"loss-scale-window", "N", "fp16: clean steps before the loss scale doubles", "1000"}, T},
      {{"bf16-gemm", "on|off",
        "bf16: run the linear layers' products in bf16 (AVX-512-BF16 through oneDNN, ~2x the "
        "fp32 rate where the CPU has it; activations rounded to bf16 for them) instead of fp32 "
        "products on fp32 copies of the weights",
        "on"},
       S},
      {{"activation-dtype", "D",
        "storage of the block inputs, the residual stream between blocks that checkpointing "
        "keeps: fp32, bf16 or fp16 (rounded to nearest at each block boundary; every product "
        "and update stays fp32). Halves the largest activation term",
        "bf16 with --dtype bf16, else fp32"},
       S},
      {{"rounding", "R", "bf16 write-back: stochastic (unbiased, counter-based) or nearest",
        "stochastic"},
       T},
      {{"checkpointing", "on|off|auto",
        "on: recompute every block in backward instead of keeping its activations; off: keep "
        "all; auto: keep as many blocks as --memory-limit allows, recompute the rest. In every "
        "mode the LM head runs in one pass (no recomputed logits) when its larger logits tile "
        "fits --memory-limit; the least memory is --checkpointing on with a tight "
        "--memory-limit",
        "auto"},
       S},
      {{"shuffle", "on|off", "shuffle the lines each epoch (off: step k reads lines k*b..k*b+b-1)",
        "on"},
       T},
      {{"seed", "N", "seed for shuffling (and --random-init's weights)", "0"}, T},
      {threads_flag(), S},
      {{"device", "cpu|cuda|cuda:N",
        "where the run computes: the CPU, or an NVIDIA GPU (a build with CUDA); on a GPU the "
        "parameters, activations and updates live in its memory. lomo memory plans a GPU run "
        "without one (for an Ampere or newer GPU)",
        "cpu"},
       S},
      {{"parallel", "none|dp|shard",
        "with several ranks (mpirun -np N lomo train ...): dp = data parallelism, every rank a "
        "full replica running its share of each --batch-size batch (the global batch), each "
        "gradient summed over the ranks before the update, so the result does not depend on N; "
        "shard = the same, with every tensor cut into N shards, one per rank, each layer gathered "
        "whole only while it is used, and each gradient reduce-scattered so that every rank "
        "updates its shard (about 1/N of the parameter memory; --optimizer lomo). Rank 0 prints, "
        "logs and saves. --threads is per rank (default: the cores / the ranks on this "
        "machine), as is --memory-limit",
        "none"},
       S},
      {{"world-size", "N",
        "the number of ranks to plan one rank's memory for (--parallel dp or shard)",
        "1"},
       M},
      {{"log", "FILE", "also write one JSON object per step to FILE (JSONL)", ""}, T},
      {{"log-dir", "DIR",
        "also write TensorBoard curves to DIR (loss, lr, tokens/s, grad norm, loss scale, eval "
        "loss/accuracy, memory), flushed every step; view them with: tensorboard --logdir DIR",
        ""},
       T},
      {{"profile", "on|off",
        "time each step by phase (linear GEMMs, attention, LM head, elementwise, updates) and "
        "print the mean per step at the end",
        "off"},
       T},
      {{"out-format", "hf|gguf",
        "hf: config.json + model.safetensors + tokenizer files; gguf: OUT/model.gguf", "hf"},
       T},
      {{"gguf-type", "T", "weight type of --out-format gguf: f32, f16, bf16 or q8_0",
        "the training dtype"},
       T},
      {{"save-every", "N",
        "write a checkpoint every N steps (parameters, optimizer state, loss scale, step); "
        "0 = only when interrupted (SIGINT/SIGTERM)",
        "0"},
       T},
      {{"save-every-minutes", "M", "also write a checkpoint when M minutes have passed since the "
        "last; 0 = off", "0"},
       T},
      {{"keep", "K", "keep the newest K checkpoints", "2"}, T},
      {{"checkpoint-dir", "DIR", "where checkpoints go", "OUT.checkpoints"}, T},
      {{"resume", "DIR",
        "continue from a checkpoint, or the newest in a folder of them: the same result as an "
        "uninterrupted run (settings that change the result must match; --steps/--epochs may "
        "grow)",
        ""},
       T},
  };
}

}  // namespace

std::vector<Flag> run_flags(RunCommand command) {
  std::vector<Flag> flags;
  for (auto& f : table()) {
    const bool wanted = f.scope == Scope::Shared ||
                        (command == RunCommand::Train ? f.scope == Scope::TrainOnly
                                                      : f.scope == Scope::MemoryOnly);
    if (wanted) flags.push_back(f.flag);
  }
  return flags;
}

RunConfig run_config_from_args(const Args& a) {
  RunConfig r;
  // A flag with a written-out default is read whenever the command declares it (the default
  // parses like a given value); one whose default depends on something else only when given.
  auto has = [&](const char* name) { return a.declared(name); };
  auto given = [&](const char* name) { return a.given(name); };
  if (given("model")) r.model_path = a.str("model");
  if (has("data")) r.data_path = a.str("data");
  if (given("out")) r.out_path = a.str("out");
  if (has("save")) r.save = a.on_off("save");
  if (given("random-init")) r.random_config_path = a.str("random-init");
  if (given("task")) r.task = data::parse_task(a.str("task"));
  if (given("eval-data")) r.eval_data_path = a.str("eval-data");
  if (given("chat-template")) r.chat_template_path = a.str("chat-template");
  if (given("train-on-all-turns")) r.chat_loss = data::ChatLoss::AllTurns;
  if (given("eval-every")) r.eval_every = a.integer("eval-every", 1, INT64_MAX);
  if (has("normalize")) {
    r.normalize =
        a.choice("normalize", {"none", "tokens"}) == "tokens" ? Normalize::Tokens : Normalize::None;
  }
  if (has("optimizer")) r.optimizer = parse_optimizer(a.str("optimizer"));
  if (given("lr")) r.lr = a.number("lr", 0, 1e6);
  if (has("batch-size")) r.batch_size = a.integer("batch-size", 1, 1 << 20);
  if (given("steps")) r.steps = a.integer("steps", 1, INT64_MAX / r.batch_size);
  if (given("epochs")) r.epochs = a.integer("epochs", 1, 1 << 20);
  // The range [2, context] needs the model: run_seq_len() checks it.
  if (given("seq-len")) r.seq_len = a.integer("seq-len", INT64_MIN, INT64_MAX);
  if (has("clip-grad-norm"))
    r.clip_grad_norm = static_cast<float>(a.number("clip-grad-norm", 0, 1e30));
  if (has("clip-grad-value"))
    r.clip_grad_value = static_cast<float>(a.number("clip-grad-value", 0, 1e30));
  if (has("weight-decay")) r.weight_decay = static_cast<float>(a.number("weight-decay", 0, 1e3));
  if (has("decay-norms-biases")) r.decay_norms_biases = a.on_off("decay-norms-biases");
  if (has("lr-schedule")) r.lr_schedule = parse_lr_schedule(a.str("lr-schedule"));
  if (has("warmup-ratio")) r.warmup_ratio = a.number("warmup-ratio", 0, 1);
  if (has("fused-gemm-update")) r.fused_gemm_update = a.on_off("fused-gemm-update");
  if (given("memory-limit")) r.memory_limit = parse_bytes(a.str("memory-limit"));
  if (has("dtype")) r.dtype = parse_storage_dtype(a.str("dtype"));
  if (has("loss-scale-init")) r.loss_scale_init = a.number("loss-scale-init", 1, 3e38);
  if (has("loss-scale-window")) r.loss_scale_window = a.integer("loss-scale-window", 1, INT64_MAX);
  if (given("bf16-gemm")) r.bf16_gemm = a.on_off("bf16-gemm");
  if (given("activation-dtype")) {
    r.activation_dtype = parse_storage_dtype(a.str("activation-dtype"), "--activation-dtype");
  }
  if (has("rounding")) {
    r.rounding = a.choice("rounding", {"stochastic", "nearest"}) == "nearest"
                     ? Rounding::Nearest
                     : Rounding::Stochastic;
  }
  if (has("checkpointing")) {
    r.checkpointing = parse_checkpointing_mode(a.choice("checkpointing", {"on", "off", "auto"}));
  }
  if (has("shuffle")) r.shuffle = a.on_off("shuffle") ? Shuffle::On : Shuffle::Off;
  if (has("seed")) r.seed = static_cast<uint64_t>(a.integer("seed", 0, INT64_MAX));
  if (given("threads")) r.threads = static_cast<int>(a.integer("threads", 1, 1024));
  if (given("device")) r.device = a.str("device");
  if (has("parallel")) r.parallel = parse_parallel_mode(a.str("parallel"));
  if (has("world-size")) r.ranks = static_cast<int>(a.integer("world-size", 1, 1 << 20));
  if (given("log")) r.log_path = a.str("log");
  if (given("log-dir")) r.log_dir = a.str("log-dir");
  if (has("profile")) r.profile = a.on_off("profile");
  if (has("out-format")) r.out_format = parse_out_format(a.choice("out-format", {"hf", "gguf"}));
  if (given("gguf-type")) r.gguf_type = parse_gguf_out_type(a.str("gguf-type"));
  if (has("save-every")) r.save_every = a.integer("save-every", 0, INT64_MAX);
  if (has("save-every-minutes")) r.save_every_minutes = a.number("save-every-minutes", 0, 1e9);
  if (has("keep")) r.keep = a.integer("keep", 1, 1 << 20);
  if (given("checkpoint-dir")) r.checkpoint_dir = a.str("checkpoint-dir");
  if (given("resume")) r.resume_path = a.str("resume");
  if (has("lora-rank")) r.lora_rank = a.integer("lora-rank", 0, 1 << 20);
  if (given("lora-alpha")) r.lora_alpha = static_cast<float>(a.number("lora-alpha", 1e-6, 1e6));
  if (has("lora-dropout")) r.lora_dropout = static_cast<float>(a.number("lora-dropout", 0, 0.999));
  if (given("lora-targets")) r.lora_targets = a.str("lora-targets");
  if (given("rslora")) r.rslora = a.on_off("rslora");
  if (has("lora-lr")) r.lora_lr = a.number("lora-lr", 0, 1e6);
  if (has("base-lr")) r.base_lr = a.number("base-lr", 0, 1e6);
  if (has("lora-weight-decay"))
    r.lora_weight_decay = static_cast<float>(a.number("lora-weight-decay", 0, 1e3));
  if (given("lora-resume")) r.lora_resume_path = a.str("lora-resume");
  if (given("merge")) r.merge = true;
  if (r.lora_targets) parse_lora_targets(*r.lora_targets);  // a bad name, before anything is read
  check_flags_apply(a, r);
  return r;
}

void check_flags_apply(const Args& a, const RunConfig& r) {
  auto refuse = [](const std::string& flag, const std::string& why) {
    throw Error(flag + " has no effect here: " + why);
  };
  if (!r.save) {
    for (const char* f : {"out-format", "gguf-type", "merge", "keep"}) {
      if (a.given(f)) refuse(std::string("--") + f, "--save off writes no model or checkpoint");
    }
  }
  if (a.given("gguf-type") && r.out_format != OutFormat::Gguf) {
    refuse("--gguf-type", "it sets the weight type of --out-format gguf, and the output is a "
                          "Hugging Face folder (add --out-format gguf, or drop --gguf-type)");
  }
  if (a.given("rounding") && r.dtype != StorageDtype::BF16) {
    refuse("--rounding", std::string("it sets how bf16 parameters are written back, and they are ") +
                             storage_dtype_name(r.dtype) +
                             " (fp16 always rounds to nearest); use --dtype bf16 or drop it");
  }
  for (const char* f : {"loss-scale-init", "loss-scale-window"}) {
    if (a.given(f) && r.dtype != StorageDtype::F16) {
      refuse(std::string("--") + f,
             std::string("dynamic loss scaling is for fp16 parameters, and they are ") +
                 storage_dtype_name(r.dtype) + "; use --dtype fp16 or drop it");
    }
  }
  if (a.given("world-size") && r.parallel == ParallelMode::None) {
    refuse("--world-size",
           "it plans one rank of a --parallel dp or shard run (add --parallel dp or shard)");
  }
  if (a.given("normalize") && !r.task) {
    refuse("--normalize", "it divides multiple-choice scores, which need --task");
  }
  if (a.given("eval-every") && r.eval_data_path.empty()) {
    refuse("--eval-every", "there is no --eval-data to evaluate on");
  }
  if (!r.uses_lora()) {
    for (const char* f : {"lora-alpha", "lora-dropout", "lora-targets", "rslora", "lora-lr",
                          "base-lr", "lora-weight-decay", "merge"}) {
      if (a.given(f)) {
        refuse(std::string("--") + f, "it is a LoRA setting, and LoRA is off (add --lora-rank R)");
      }
    }
  }
  if (r.base_frozen() && !r.merge && a.given("out-format")) {
    refuse("--out-format", "plain LoRA (--base-lr 0) saves only the adapters, in PEFT's layout; "
                           "add --merge to save base + adapters as one model in that format");
  }
  if (a.given("fused-gemm-update") && r.optimizer != OptimizerKind::Lomo) {
    refuse("--fused-gemm-update",
           std::string("it is LOMO's zero-buffer update, and --optimizer ") +
               optimizer_name(r.optimizer) + " has none");
  }
}

}  // namespace lomo::cli
