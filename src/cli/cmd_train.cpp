#include <omp.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "data/dataset.h"
#include "io/file.h"
#include "io/output_dir.h"
#include "model/default_model.h"
#include "model/export.h"
#include "model/llama.h"
#include "model/loader.h"
#include "optim/schedule.h"
#include "text/tokenizer.h"
#include "train/batch_order.h"
#include "train/evaluate.h"
#include "train/memory_plan.h"
#include "train/report.h"
#include "train/trainer.h"

namespace lomo::cli {

namespace {

std::vector<Flag> train_flags() {
  return {
      {"model", "PATH", "Hugging Face model folder or .gguf file", "the default model"},
      {"data", "FILE",
       "training data, JSONL: {\"text\"}, {\"prompt\", \"completion\"}, {\"input_ids\"}, or a "
       "task's fields",
       "", true},
      {"out", "DIR", "where the trained model goes (must not exist, or be empty)", "", true},
      {"task", "NAME",
       "read --data (and --eval-data) as boolq, rte, wic, wsc, multirc, copa or choice; train on "
       "prompt + the labelled answer",
       ""},
      {"eval-data", "FILE", "evaluate on FILE: accuracy with --task, else mean loss", ""},
      {"eval-every", "N", "evaluate every N steps (and before the first and after the last)",
       "once per epoch"},
      {"normalize", "none|tokens", "with --task: divide each candidate's NLL by its token count",
       "none"},
      {"optimizer", "NAME",
       "lomo (fused SGD), adalomo (fused, adaptive), sgd or adamw (classic baselines)", "lomo"},
      {"lr", "F", "peak learning rate",
       "0.03 for lomo/sgd (the paper's), 5e-4 adalomo, 1e-5 adamw"},
      {"steps", "N", "number of optimisation steps (instead of --epochs)", ""},
      {"epochs", "N", "passes over the data (steps = ceil(epochs·lines / batch))", "1"},
      {"batch-size", "N", "sequences per step", "4"},
      {"seq-len", "N", "longer sequences are truncated (and counted)", "min(1024, context)"},
      {"clip-grad-norm", "F", "clip the global gradient norm to F (two backward passes); 0 = off",
       "0"},
      {"clip-grad-value", "F", "clamp every gradient element to [-F, F]; 0 = off", "0"},
      {"weight-decay", "F", "p <- p(1 - lr*wd) - lr*g", "0"},
      {"decay-norms-biases", "on|off", "apply weight decay to norm weights and biases too", "on"},
      {"lr-schedule", "S", "constant, linear (warm-up then linear to 0) or cosine", "linear"},
      {"warmup-ratio", "F", "fraction of the steps spent warming up", "0.1"},
      {"fused-gemm-update", "on|off",
       "lomo: update linear weights inside their gradient GEMM, no gradient buffer (off with "
       "--clip-grad-value)",
       "on"},
      {"memory-limit", "BYTES",
       "refuse to start when the predicted memory exceeds this (e.g. 20G, 512M; 0 = no limit)",
       "available RAM"},
      {"dtype", "D",
       "parameter storage: fp32, bf16 or fp16 (compute and updates in fp32 either way)", "fp32"},
      {"loss-scale-init", "S", "fp16: initial dynamic loss scale", "65536"},
      {"loss-scale-window", "N", "fp16: clean steps before the loss scale doubles", "1000"},
      {"bf16-gemm", "on|off",
       "bf16: run the linear layers' products in bf16 (AVX-512-BF16 through oneDNN, ~2x the "
       "fp32 rate where the CPU has it; activations rounded to bf16 for them) instead of fp32 "
       "products on fp32 copies of the weights",
       "on"},
      {"rounding", "R", "bf16 write-back: stochastic (unbiased, counter-based) or nearest",
       "stochastic"},
      {"checkpointing", "on|off|auto",
       "on: recompute every block in backward instead of keeping its activations; off: keep "
       "all; auto: keep as many blocks as --memory-limit allows, recompute the rest. In every "
       "mode the LM head runs in one pass (no recomputed logits) when its larger logits tile "
       "fits --memory-limit; the least memory is --checkpointing on with a tight --memory-limit",
       "auto"},
      {"shuffle", "on|off", "shuffle the lines each epoch (off: step k reads lines k*b..k*b+b-1)",
       "on"},
      {"seed", "N", "seed for shuffling", "0"},
      {"threads", "N", "CPU threads", "all cores"},
      {"log", "FILE", "also write one JSON object per step to FILE (JSONL)", ""},
      {"profile", "on|off",
       "time each step by phase (linear GEMMs, attention, LM head, elementwise, updates) and "
       "print the mean per step at the end",
       "off"},
      {"out-format", "hf|gguf",
       "hf: config.json + model.safetensors + tokenizer files; gguf: OUT/model.gguf", "hf"},
      {"gguf-type", "T", "weight type of --out-format gguf: f32, f16, bf16 or q8_0",
       "the training dtype"},
  };
}

}  // namespace

int cmd_train(int argc, char** argv) {
  Args args("train", "lomo train --model DIR --data FILE.jsonl --out DIR [flags]",
            "Fine-tunes all parameters of a model. With --optimizer lomo each parameter's\n"
            "gradient is applied inside backward and discarded, so training needs about the\n"
            "memory of inference. Prints one line per step and the memory table at the end;\n"
            "writes the model (a Hugging Face folder, or model.gguf) and memory.json to --out.",
            train_flags());
  args.parse(argc, argv, 2);
  if (args.help_requested()) {
    std::fputs(args.help().c_str(), stdout);
    return 0;
  }
  const std::string model_path = args.given("model") ? args.str("model") : require_default_model();
  // Everything a user can get wrong is checked before the first step.
  if (args.given("steps") && args.given("epochs")) {
    throw Error("give --steps or --epochs, not both");
  }
  if (args.given("threads"))
    omp_set_num_threads(static_cast<int>(args.integer("threads", 1, 1024)));
  TrainOptions opts;
  opts.optimizer = parse_optimizer(args.str("optimizer"));
  const double lr = args.given("lr")                           ? args.number("lr", 0, 1e6)
                    : opts.optimizer == OptimizerKind::AdamW   ? 1e-5
                    : opts.optimizer == OptimizerKind::AdaLomo ? 5e-4
                                                               : 0.03;
  opts.weight_decay = static_cast<float>(args.number("weight-decay", 0, 1e3));
  opts.clip_grad_norm = static_cast<float>(args.number("clip-grad-norm", 0, 1e30));
  opts.clip_grad_value = static_cast<float>(args.number("clip-grad-value", 0, 1e30));
  opts.decay_norms_and_biases = args.on_off("decay-norms-biases");
  const std::string ckpt_mode = args.choice("checkpointing", {"on", "off", "auto"});
  opts.checkpointing = ckpt_mode == "off" ? Checkpointing::Off : Checkpointing::On;
  opts.fused_gemm_update = args.on_off("fused-gemm-update");
  opts.rounding = args.choice("rounding", {"stochastic", "nearest"}) == "nearest"
                      ? Rounding::Nearest
                      : Rounding::Stochastic;
  const StorageDtype dtype = parse_storage_dtype(args.str("dtype"));
  // On by default where it applies (bf16 storage); asked for explicitly elsewhere, it is an error.
  opts.bf16_gemm = args.on_off("bf16-gemm") && dtype == StorageDtype::BF16;
  if (args.given("bf16-gemm") && args.on_off("bf16-gemm") && dtype != StorageDtype::BF16) {
    throw Error("--bf16-gemm on needs --dtype bf16 (the weights are multiplied as stored)");
  }
  opts.loss_scale_init = args.number("loss-scale-init", 1, 3e38);
  opts.loss_scale_window = args.integer("loss-scale-window", 1, INT64_MAX);
  const Shuffle shuffle = args.on_off("shuffle") ? Shuffle::On : Shuffle::Off;
  const uint64_t seed = static_cast<uint64_t>(args.integer("seed", 0, INT64_MAX));
  opts.seed = seed;
  const int64_t batch_size = args.integer("batch-size", 1, 1 << 20);
  Schedule sched;
  sched.kind = parse_lr_schedule(args.str("lr-schedule"));
  sched.lr = lr;
  sched.warmup_ratio = args.number("warmup-ratio", 0, 1);

  const std::string out_format = args.choice("out-format", {"hf", "gguf"});
  const GgmlType gguf_type = args.given("gguf-type") ? parse_gguf_out_type(args.str("gguf-type"))
                             : args.str("dtype") == "bf16" ? GgmlType::BF16
                             : args.str("dtype") == "fp16" ? GgmlType::F16
                                                           : GgmlType::F32;
  OutputDir out(args.str("out"));
  std::ofstream log;
  if (args.given("log")) {
    log.open(args.str("log"));
    if (!log) throw Error(args.str("log") + ": cannot open the log file for writing");
  }

  // Config, tokenizer, data and the memory plan first: a run that cannot fit is refused before
  // the weights are read.
  const size_t available_at_start = available_memory_bytes();
  const ModelConfig cfg = load_model_config(model_path);
  const int64_t n_params = count_params(cfg);
  const int64_t seq_len = args.given("seq-len") ? args.integer("seq-len", 2, cfg.max_position)
                                                : std::min<int64_t>(1024, cfg.max_position);
  if (cfg.sliding_window > 0 && seq_len > cfg.sliding_window) {
    throw Error("--seq-len " + std::to_string(seq_len) + " exceeds the model's sliding_window " +
                std::to_string(cfg.sliding_window) +
                " (sliding-window attention is not supported)");
  }
  const std::unique_ptr<text::Tokenizer> tok = text::load_tokenizer(model_path);
  std::optional<data::Task> task;
  if (args.given("task")) task = data::parse_task(args.str("task"));
  const data::DataOptions dopts{seq_len, &cfg, tok.get(), task};
  const data::Dataset data = data::load_dataset(args.str("data"), dopts);
  const Normalize norm = args.choice("normalize", {"none", "tokens"}) == "tokens"
                             ? Normalize::Tokens
                             : Normalize::None;
  // Evaluation data: multiple-choice accuracy with --task, otherwise mean loss.
  std::vector<data::ChoiceExample> eval_choices;
  data::Dataset eval_set;
  const bool eval_on = args.given("eval-data");
  if (eval_on) {
    if (task) {
      if (!tok) throw Error("--task needs a tokenizer in the model folder");
      eval_choices = data::load_choice_examples(args.str("eval-data"), *task);
    } else {
      eval_set = data::load_dataset(args.str("eval-data"), dopts);
    }
  }
  const int64_t n = static_cast<int64_t>(data.examples.size());
  const BatchOrder order(n, batch_size, shuffle, seed);
  const int64_t total_steps =
      args.given("steps") ? args.integer("steps", 1, INT64_MAX / batch_size)
                          : (args.integer("epochs", 1, 1 << 20) * n + batch_size - 1) / batch_size;
  const int64_t eval_every =
      args.given("eval-every") ? args.integer("eval-every", 1, INT64_MAX) : order.steps_per_epoch();
  sched.total_steps = total_steps;

  std::printf("model   %s: %s, %d layers, d_model %lld, %lld parameters%s\n", model_path.c_str(),
              arch_name(cfg.arch), static_cast<int>(cfg.n_layer),
              static_cast<long long>(cfg.d_model), static_cast<long long>(n_params),
              cfg.tied_embeddings ? ", tied embeddings" : "");
  std::printf("data    %s: %lld sequences (%s)", args.str("data").c_str(),
              static_cast<long long>(n),
              task ? data::task_name(*task) : data::format_name(data.format));
  if (data.truncated)
    std::printf(", %lld truncated to %lld tokens", static_cast<long long>(data.truncated),
                static_cast<long long>(seq_len));
  if (data.dropped)
    std::printf(", %lld dropped (no loss token left after truncation)",
                static_cast<long long>(data.dropped));
  std::printf("\n");
  if (tok)
    std::printf("tokens  %s, vocabulary %lld\n", tok->kind().c_str(),
                static_cast<long long>(tok->vocab_size()));
  std::printf(
      "train   %s, lr %g (%s, warm-up %lld steps), %lld steps of %lld sequences, "
      "checkpointing %s, %d threads\n",
      optimizer_name(opts.optimizer), lr, args.str("lr-schedule").c_str(),
      static_cast<long long>(sched.warmup_steps()), static_cast<long long>(total_steps),
      static_cast<long long>(batch_size), ckpt_mode.c_str(), omp_get_max_threads());
  std::fflush(stdout);

  // The planner's prediction for the largest batch this run can see; refuse before step 1 if
  // it does not fit.
  {
    MemoryPlanInput in;
    in.config = cfg;
    in.optimizer = opts.optimizer;
    in.dtype = dtype;
    in.batch = batch_size;
    in.seq = 2;
    for (const auto& e : data.examples)
      in.seq = std::max<int64_t>(in.seq, static_cast<int64_t>(e.ids.size()));
    in.fused_gemm_update = opts.fused_gemm_update;
    in.clip_grad_norm = opts.clip_grad_norm > 0;
    in.clip_grad_value = opts.clip_grad_value > 0;
    in.bf16_gemm = opts.bf16_gemm;
    const size_t limit =
        args.given("memory-limit") ? parse_bytes(args.str("memory-limit")) : available_at_start;
    opts.checkpointing = ckpt_mode == "auto" ? choose_checkpointing(in, limit)
                                             : fit_head(in, opts.checkpointing, limit);
    std::printf("ckpt    %s%s\n", ckpt_mode == "auto" ? "auto: " : "",
                describe_checkpointing(opts.checkpointing, cfg.n_layer).c_str());
    in.checkpointing = opts.checkpointing;
    const MemoryPlan plan = plan_memory(in);
    std::printf(
        "memory  predicted %s (parameters %s, gradients %s, states %s, activations %s, workspace "
        "%s)%s\n",
        format_bytes(plan.total()).c_str(), format_bytes(plan.parameters).c_str(),
        format_bytes(plan.gradients).c_str(), format_bytes(plan.optimizer_states).c_str(),
        format_bytes(plan.activations).c_str(), format_bytes(plan.workspace).c_str(),
        limit ? (", limit " + format_bytes(limit)).c_str() : "");
    if (limit > 0 && plan.total() > limit) {
      throw Error(
          "this run needs about " + format_bytes(plan.total()) + " but the memory limit is " +
          format_bytes(limit) + " (parameters " + format_bytes(plan.parameters) + ", gradients " +
          format_bytes(plan.gradients) + ", optimizer states " +
          format_bytes(plan.optimizer_states) + ", activations " + format_bytes(plan.activations) +
          "); try --optimizer lomo, --checkpointing on, a smaller --batch-size or --seq-len, "
          "or raise --memory-limit");
    }
  }
  MemoryTracker tracker;
  Model model = load_model(model_path, tracker, dtype);
  LlamaModel net(cfg, model.params, tracker);
  Trainer trainer(net, opts, tracker);
  // Timed steps only: evaluation passes between them stay out of the profile.
  std::unique_ptr<StepProfile> profile;
  if (args.on_off("profile")) profile = std::make_unique<StepProfile>();
  // Evaluation: higher accuracy or lower loss is better; the best and last are reported.
  double best = NAN, last_eval = NAN, first_eval = NAN;
  int64_t best_step = -1;
  auto evaluate = [&](int64_t step) {
    if (!eval_on) return;
    nlohmann::ordered_json j;
    j["step"] = step;
    double v;
    bool better;
    if (task) {
      const ChoiceAccuracy a = evaluate_choices(net, *tok, eval_choices, norm, seq_len);
      v = a.accuracy();
      better = std::isnan(best) || v > best;
      std::printf("eval    step %lld: accuracy %.4f (%lld/%lld)\n", static_cast<long long>(step), v,
                  static_cast<long long>(a.correct), static_cast<long long>(a.labelled));
      j["eval_accuracy"] = v;
    } else {
      v = mean_loss(net, eval_set.examples, batch_size);
      better = std::isnan(best) || v < best;
      std::printf("eval    step %lld: loss %.4f\n", static_cast<long long>(step), v);
      j["eval_loss"] = v;
    }
    std::fflush(stdout);
    if (better) {
      best = v;
      best_step = step;
    }
    last_eval = v;
    if (std::isnan(first_eval)) first_eval = v;
    if (log.is_open()) log << j.dump() << "\n" << std::flush;
  };
  evaluate(0);
  double first_loss = NAN, last_loss = NAN;
  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  int64_t total_tokens = 0;
  for (int64_t step = 0; step < total_steps; ++step) {
    std::vector<Sequence> seqs;
    for (int64_t i : order.indices(step)) seqs.push_back(data.examples[i]);
    const Batch batch = make_batch(seqs);
    const double step_lr = sched.at(step);
    const auto t0 = clock::now();
    net.set_profile(profile.get());
    const StepResult r = trainer.step(batch, step_lr, step + 1);
    net.set_profile(nullptr);
    const double secs = std::chrono::duration<double>(clock::now() - t0).count();
    if (profile) profile->end_step(secs);
    int64_t tokens = 0;
    for (int32_t L : batch.lengths) tokens += L;
    total_tokens += tokens;
    if (step == 0) first_loss = r.loss;
    last_loss = r.loss;
    const double tps = tokens / std::max(secs, 1e-9);
    std::printf("step %lld/%lld  loss %.4f  lr %.3e  tok/s %.0f", static_cast<long long>(step + 1),
                static_cast<long long>(total_steps), r.loss, step_lr, tps);
    if (r.grad_norm >= 0) std::printf("  grad_norm %.4f", r.grad_norm);
    if (r.loss_scale > 0) std::printf("  loss_scale %g", r.loss_scale);
    if (r.skipped) std::printf("  skipped: gradient overflow, nothing updated, loss scale halved");
    std::printf("\n");
    std::fflush(stdout);
    if (log.is_open()) {
      nlohmann::ordered_json j;
      j["step"] = step + 1;
      j["loss"] = r.loss;
      j["lr"] = step_lr;
      j["tokens_per_s"] = tps;
      j["tokens"] = tokens;
      if (r.grad_norm >= 0) j["grad_norm"] = r.grad_norm;
      if (r.loss_scale > 0) j["loss_scale"] = r.loss_scale;
      if (r.skipped) j["skipped"] = true;
      log << j.dump() << "\n";
      log.flush();
    }
    if ((step + 1) % eval_every == 0 || step + 1 == total_steps) evaluate(step + 1);
  }
  const double total_secs = std::chrono::duration<double>(clock::now() - t_start).count();
  if (profile) std::printf("%s", profile->table().c_str());
  std::printf("done    loss %.4f -> %.4f in %.1f s (%.0f tokens/s)\n", first_loss, last_loss,
              total_secs, total_tokens / std::max(total_secs, 1e-9));
  if (eval_on) {
    std::printf("eval    %s before training %.4f, after %.4f (best %.4f at step %lld)\n",
                task ? "accuracy" : "loss", first_eval, last_eval, best,
                static_cast<long long>(best_step));
  }
  std::printf("%s", memory_table(tracker).c_str());

  out.create();
  if (out_format == "gguf") {
    export_gguf(out.staging() + "/model.gguf", model, tok.get(), model_path, gguf_type);
  } else {
    export_hf(out.staging(), model, tok.get(), model_path);
  }
  write_file_atomic(out.staging() + "/memory.json", memory_json(tracker).dump(2) + "\n");
  out.commit();
  std::printf("saved   %s\n", args.str("out").c_str());
  return 0;
}

}  // namespace lomo::cli
