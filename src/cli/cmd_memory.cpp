#include <omp.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/rng.h"
#include "model/default_model.h"
#include "model/gguf_model.h"
#include "model/init.h"
#include "model/loader.h"
#include "train/memory_plan.h"
#include "train/trainer.h"

namespace lomo::cli {

namespace {

std::string gib(size_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f GiB", static_cast<double>(b) / (1024.0 * 1024 * 1024));
  return s;
}

}  // namespace

int cmd_memory(int argc, char** argv) {
  Args args("memory", "lomo memory [--model PATH | --config FILE] [flags] [--measure] [--json]",
            "Predicts the memory of one training step by category (parameters, gradients,\n"
            "optimizer states, activations, workspace) from the config alone, by the rules the\n"
            "engine allocates by. --measure runs one real step and prints the tracked\n"
            "peaks beside the prediction. GiB = 2^30 bytes.",
            {{"model", "PATH", "model folder or .gguf file", "the default model"},
             {"config", "FILE", "a config.json instead of a model", ""},
             {"optimizer", "NAME", "lomo, adalomo, sgd or adamw", "lomo"},
             {"dtype", "D", "parameter storage: fp32, bf16 or fp16", "fp32"},
             {"batch-size", "N", "sequences per step", "1"},
             {"seq-len", "N", "tokens per sequence", "512"},
             {"checkpointing", "on|off|auto",
              "activation checkpointing; auto: keep as many blocks' activations as fit "
              "--memory-limit (every mode: the one-pass LM head if it fits)",
              "on"},
             {"bf16-gemm", "on|off", "bf16: the linear layers' products in bf16 (lomo train)",
              "on"},
             {"memory-limit", "BYTES", "the limit the checkpointing plan fits in (e.g. 20G)",
              "available RAM"},
             {"fused-gemm-update", "on|off", "lomo's zero-buffer update of linear weights", "on"},
             {"clip-grad-norm", "F", "> 0: plan the norm pass (every gradient materialised)", "0"},
             {"measure", "", "run one step and print measured beside predicted", ""},
             {"json", "", "print one JSON object (bytes)", ""}});
  args.parse(argc, argv, 2);
  if (args.help_requested()) {
    std::fputs(args.help().c_str(), stdout);
    return 0;
  }
  const bool measure = args.given("measure"), json = args.given("json");
  if (args.given("model") && args.given("config"))
    throw Error("give --model or --config, not both");
  MemoryPlanInput in;
  const std::string model_path =
      args.given("config") ? ""
                           : (args.given("model") ? args.str("model") : require_default_model());
  in.config =
      args.given("config") ? load_config(args.str("config")) : load_model_config(model_path);
  in.optimizer = parse_optimizer(args.str("optimizer"));
  in.dtype = parse_storage_dtype(args.str("dtype"));
  in.batch = args.integer("batch-size", 1, 1 << 20);
  in.seq = args.integer("seq-len", 2, in.config.max_position);
  in.fused_gemm_update = args.on_off("fused-gemm-update");
  in.clip_grad_norm = args.number("clip-grad-norm", 0, 1e30) > 0;
  in.bf16_gemm = args.on_off("bf16-gemm") && in.dtype == StorageDtype::BF16;
  const std::string ckpt = args.choice("checkpointing", {"on", "off", "auto"});
  in.checkpointing = ckpt == "on" ? Checkpointing::On : Checkpointing::Off;
  const size_t limit = args.given("memory-limit") ? parse_bytes(args.str("memory-limit"))
                                                  : available_memory_bytes();
  in.checkpointing = ckpt == "auto" ? choose_checkpointing(in, limit)
                                    : fit_head(in, in.checkpointing, limit);
  const MemoryPlan plan = plan_memory(in);

  MemoryPlan measured;
  size_t rss = 0;
  if (measure) {
    MemoryTracker tracker;
    Model model = model_path.empty() ? Model{in.config, ModelParams(in.config, tracker, in.dtype)}
                                     : load_model(model_path, tracker, in.dtype);
    if (model_path.empty()) init_params(model.config, model.params, 0);
    std::vector<Sequence> seqs(in.batch);
    for (int64_t b = 0; b < in.batch; ++b) {
      for (int64_t t = 0; t < in.seq; ++t) {
        seqs[b].ids.push_back(
            static_cast<int32_t>(counter_random(1, b, t) % static_cast<uint64_t>(in.config.vocab)));
      }
    }
    LlamaModel net(model.config, model.params, tracker);
    TrainOptions o;
    o.optimizer = in.optimizer;
    o.checkpointing = in.checkpointing;
    o.bf16_gemm = in.bf16_gemm;
    o.fused_gemm_update = in.fused_gemm_update;
    o.clip_grad_norm = static_cast<float>(args.number("clip-grad-norm", 0, 1e30));
    Trainer trainer(net, o, tracker);
    trainer.step(make_batch(seqs), 0.0, 1);
    measured = {tracker.peak(MemCategory::Parameters), tracker.peak(MemCategory::Gradients),
                tracker.peak(MemCategory::OptimizerStates), tracker.peak(MemCategory::Activations),
                tracker.peak(MemCategory::Workspace)};
    rss = process_peak_rss_bytes();
  }
  auto as_json = [](const MemoryPlan& m) {
    return nlohmann::ordered_json{{"parameters", m.parameters},
                                  {"gradients", m.gradients},
                                  {"optimizer_states", m.optimizer_states},
                                  {"activations", m.activations},
                                  {"workspace", m.workspace},
                                  {"total", m.total()}};
  };
  if (json) {
    nlohmann::ordered_json j = as_json(plan);
    if (measure) {
      j["measured"] = as_json(measured);
      j["measured"]["peak_rss"] = rss;
    }
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  const int64_t P = count_params(in.config);
  std::printf("%s, %.3f B parameters, %s, %s, batch %lld x seq %lld, checkpointing %s\n",
              arch_name(in.config.arch), static_cast<double>(P) / 1e9, storage_dtype_name(in.dtype),
              optimizer_name(in.optimizer), static_cast<long long>(in.batch),
              static_cast<long long>(in.seq),
              describe_checkpointing(in.checkpointing, in.config.n_layer).c_str());
  const std::pair<const char*, size_t MemoryPlan::*> rows[] = {
      {"parameters", &MemoryPlan::parameters},
      {"gradients", &MemoryPlan::gradients},
      {"optimizer_states", &MemoryPlan::optimizer_states},
      {"activations", &MemoryPlan::activations},
      {"workspace", &MemoryPlan::workspace}};
  std::printf("  %-18s %12s%s\n", "category", "predicted", measure ? "     measured" : "");
  for (const auto& [name, field] : rows) {
    std::printf("  %-18s %12s%s\n", name, gib(plan.*field).c_str(),
                measure ? ("  " + gib(measured.*field)).c_str() : "");
  }
  std::printf("  %-18s %12s%s\n", "total", gib(plan.total()).c_str(),
              measure ? ("  " + gib(measured.total())).c_str() : "");
  if (measure) std::printf("  %-18s %12s  %s\n", "process peak RSS", "", gib(rss).c_str());
  return 0;
}

}  // namespace lomo::cli
