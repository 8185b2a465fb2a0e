#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/preamble.h"
#include "cli/run_flags.h"
#include "core/error.h"
#include "model/loader.h"
#include "model/params.h"
#include "ops/backend.h"
#include "train/engine.h"
#include "train/memory_measure.h"
#include "train/memory_plan.h"
#include "train/run_config.h"

namespace lomo::cli {

namespace {

std::string gib(size_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f GiB", static_cast<double>(b) / (1024.0 * 1024 * 1024));
  return s;
}

nlohmann::ordered_json as_json(const MemoryPlan& m) {
  return {{"parameters", m.parameters},
          {"gradients", m.gradients},
          {"optimizer_states", m.optimizer_states},
          {"activations", m.activations},
          {"workspace", m.workspace},
          {"total", m.total()}};
}

// The run flags that change a step's memory, with --config beside --model, then memory's own.
std::vector<Flag> memory_flags() {
  std::vector<Flag> flags = run_flags(RunCommand::Memory);
  flags.insert(flags.begin() + 1, {"config", "FILE", "a config.json instead of a model", ""});
  flags.push_back({"convention", "C",
                   "engine: what this engine allocates; paper: the paper's Table 1 counting "
                   "(gradients in the storage dtype, fp32 master copies for sgd and adamw in "
                   "half precision, which the engine refuses)",
                   "engine"});
  flags.push_back({"measure", "", "run one step and print measured beside predicted", ""});
  flags.push_back({"json", "", "print one JSON object (bytes)", ""});
  return flags;
}

}  // namespace

int cmd_memory(int argc, char** argv) {
  Args args("memory", "lomo memory [--model PATH | --config FILE] [flags] [--measure] [--json]",
            "Predicts the memory of one training step by category (parameters, gradients,\n"
            "optimizer states, activations, workspace) from the config alone, by the rules the\n"
            "engine allocates by, for the flags and defaults of lomo train: a batch of\n"
            "--batch-size sequences of --seq-len tokens, the longest lomo train would see.\n"
            "--measure runs one real step and prints the tracked peaks beside the prediction.\n"
            "GiB = 2^30 bytes.",
            memory_flags());
  args.parse(argc, argv, 2);
  if (args.help_requested()) {
    std::fputs(args.help().c_str(), stdout);
    return 0;
  }
  if (args.given("model") && args.given("config"))
    throw Error("give --model or --config, not both");
  const RunConfig run = run_config_from_args(args);
  const std::string convention = args.str("convention");
  if (convention != "engine" && convention != "paper")
    throw Error("--convention: \"" + convention + "\" is not one of engine, paper");
  const MemoryConvention conv =
      convention == "paper" ? MemoryConvention::Paper : MemoryConvention::Engine;
  const bool measure = args.given("measure");
  if (measure && conv == MemoryConvention::Paper)
    throw Error("--measure runs the engine: it needs --convention engine");
  if (measure && run.parallel == ParallelMode::Shard) {
    throw Error("--measure runs one process, and --parallel shard needs its ranks: run `mpirun -np "
                "N lomo train ... --parallel shard`, whose memory.json and report hold each "
                "category's tracked peak (rank 0's)");
  }
  check_run_config(run, conv);
  const std::string model_path =
      model_preamble(args, args.given("config") ? ModelNeed::Optional : ModelNeed::Required);
  const ModelConfig config =
      args.given("config") ? load_config(args.str("config")) : load_model_config(model_path);
  // A GPU run is planned from the CUDA backend's declarations, with no GPU needed; one is opened
  // only to run --measure's step or to read its free memory (the default --memory-limit).
  const bool gpu = parse_device(run.device).kind == Device::Kind::Cuda;
  std::unique_ptr<Backend> backend;
  std::string no_gpu;  // why no GPU backend opened, for the plan made without one
  if (!gpu) {
    backend = backend_from_args(args);
  } else {
    try {
      backend = make_run_backend(1, run.device, run.uses_bf16_gemm());
    } catch (const Error& e) {
      no_gpu = e.what();
      if (measure) {
        throw Error(std::string(e.what()) + "; --measure runs a step on the GPU: without one, "
                    "leave out --measure for the plan alone");
      }
    }
  }
  // Attention through cuDNN: a run with bf16 products, in a build with cuDNN (planned as one
  // where this build has no CUDA backend at all).
  const bool cudnn_attention = gpu && cuda_attention_through_cudnn(run.uses_bf16_gemm());
  MemoryPlanInput in =
      backend ? plan_input(run, config, run_seq_len(run, config), *backend)
              : plan_input_for_cuda(run, config, run_seq_len(run, config), cudnn_attention);
  if (in.lora.enabled()) check_lora_config(in.lora, config);  // as train refuses
  in.convention = conv;
  // Without the GPU there is no free memory to read: --checkpointing auto plans with no limit
  // unless --memory-limit gives the GPU's.
  const size_t limit = backend || !gpu ? run_memory_limit(run, backend.get())
                                       : run.memory_limit.value_or(0);
  in.checkpointing = fit_checkpointing(run.checkpointing, in, limit);
  const MemoryPlan plan = plan_memory(in);
  const MeasuredMemory measured =
      measure ? measure_step_memory(in, train_options(run, in.checkpointing), model_path, *backend)
              : MeasuredMemory{};

  if (args.given("json")) {
    nlohmann::ordered_json j = as_json(plan);
    if (gpu) {
      j["device"] = run.device;
      j["untracked"] = plan.untracked;
      j["device_total"] = plan.total() + plan.untracked;
    }
    if (measure) {
      j["measured"] = as_json(measured.peaks);
      j["measured"]["peak_rss"] = measured.peak_rss;
      j["measured"]["rss_before"] = measured.rss_before;
    }
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("%s, %.3f B parameters, %s (block inputs %s), %s, batch %lld x seq %lld, "
              "checkpointing %s\n",
              arch_name(config.arch), static_cast<double>(count_params(config)) / 1e9,
              storage_dtype_name(in.dtype), storage_dtype_name(in.activation_dtype),
              optimizer_name(in.optimizer),
              static_cast<long long>(in.batch), static_cast<long long>(in.seq),
              describe_checkpointing(in.checkpointing, config.n_layer).c_str());
  const std::pair<const char*, size_t MemoryPlan::*> rows[] = {
      {"parameters", &MemoryPlan::parameters},
      {"gradients", &MemoryPlan::gradients},
      {"optimizer_states", &MemoryPlan::optimizer_states},
      {"activations", &MemoryPlan::activations},
      {"workspace", &MemoryPlan::workspace}};
  std::printf("  %-18s %12s%s\n", "category", "predicted", measure ? "     measured" : "");
  for (const auto& [name, field] : rows) {
    std::printf("  %-18s %12s%s\n", name, gib(plan.*field).c_str(),
                measure ? ("  " + gib(measured.peaks.*field)).c_str() : "");
  }
  std::printf("  %-18s %12s%s\n", "total", gib(plan.total()).c_str(),
              measure ? ("  " + gib(measured.peaks.total())).c_str() : "");
  if (gpu) {
    std::printf("  %-18s %12s   cuBLASLt's workspace and the reduction scratch, held by the "
                "backend outside the tracker\n", "+ libraries", gib(plan.untracked).c_str());
    std::printf("  %-18s %12s   on %s (an Ampere or newer GPU), %s%s; plus what the driver "
                "holds (the CUDA context, cuDNN's handle), which no plan knows\n",
                "= device", gib(plan.total() + plan.untracked).c_str(), run.device.c_str(),
                backend           ? "attention's scratch as this GPU's backend declares it"
                : cudnn_attention ? "attention through cuDNN (its workspace at the planned cap)"
                                  : "attention in the fp32 kernels",
                backend || cuda_backend_built() ? ""
                                                : " (this build has no CUDA backend: planned as "
                                                  "one built with cuDNN)");
    if (!backend && !run.memory_limit) {
      std::printf("  planned without a GPU (%s), so without a memory limit: %s; give "
                  "--memory-limit (the GPU's free memory) to plan what lomo train would choose "
                  "on it\n",
                  no_gpu.c_str(),
                  run.checkpointing == CheckpointingMode::Auto
                      ? "--checkpointing auto keeps every block's activations and the LM head "
                        "runs in one pass where it can"
                      : "the LM head runs in one pass where it can");
    }
  }
  std::printf("  gradients: %s\n", describe_gradient_memory(in).c_str());
  if (run.parallel == ParallelMode::Dp) {
    std::printf("  per rank of %d (--parallel dp): a full replica running %lld of the %lld "
                "sequences of each batch; MPI's or NCCL's own buffers are not counted\n",
                run.ranks, static_cast<long long>(in.batch),
                static_cast<long long>(run.batch_size));
  }
  if (run.parallel == ParallelMode::Shard) {
    std::printf("  per rank of %d (--parallel shard): 1/%d of every tensor, the embedding, final "
                "norm and LM head gathered whole through a training pass, one block gathered at a "
                "time; %lld of the %lld sequences of each batch; loading still reads the whole "
                "model first; MPI's or NCCL's own buffers are not counted\n",
                run.ranks, run.ranks, static_cast<long long>(in.batch),
                static_cast<long long>(run.batch_size));
    // The paper's one sharded figure (Lv et al. 2023: LLaMA-65B on eight RTX 3090; design.md).
    if (run.ranks == 8 && config.d_model == 8192 && config.n_layer == 80) {
      std::printf("  the paper (LOMO, LLaMA-65B on 8 RTX 3090, fp16, ZeRO-3 sharding): 19.18 GB "
                  "per GPU = %.2f GiB; this plan: %.2f GB = %s\n",
                  19.18e9 / (1024.0 * 1024 * 1024), static_cast<double>(plan.total()) / 1e9,
                  gib(plan.total()).c_str());
    }
  }
  if (in.lora.enabled()) {
    const auto n = static_cast<size_t>(lora_param_count(in.lora, config));
    std::printf("  LoRA rank %lld on %s: %zu adapter parameters, counted above: %s of adapters, "
                "%s of their gradients, %s of AdamW states; base %s\n",
                static_cast<long long>(in.lora.rank), lora_targets_string(in.lora.targets).c_str(),
                n, format_bytes(4 * n).c_str(), format_bytes(4 * n).c_str(),
                format_bytes(8 * n).c_str(),
                in.base_frozen ? "frozen: no base gradient or state"
                               : (std::string("trained by ") + optimizer_name(in.optimizer)).c_str());
  }
  if (measure) {
    std::printf("  %-18s %12s  %s\n", "process peak RSS", "", gib(measured.peak_rss).c_str());
    std::printf("  %-18s %12s  %s (peak RSS less the RSS before the model)\n", "RSS growth", "",
                gib(measured.peak_rss - std::min(measured.peak_rss, measured.rss_before)).c_str());
  }
  return 0;
}

}  // namespace lomo::cli
