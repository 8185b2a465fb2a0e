#include "train/memory_plan.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "model/params.h"

namespace lomo {

StorageDtype parse_storage_dtype(const std::string& s) {
  if (s == "fp32") return StorageDtype::F32;
  if (s == "bf16") return StorageDtype::BF16;
  if (s == "fp16") return StorageDtype::F16;
  throw Error("--dtype: \"" + s + "\" is not one of fp32, bf16, fp16");
}

const char* storage_dtype_name(StorageDtype d) {
  switch (d) {
    case StorageDtype::F32:
      return "fp32";
    case StorageDtype::BF16:
      return "bf16";
    case StorageDtype::F16:
      return "fp16";
  }
  return "?";
}

MemoryPlan plan_memory(const MemoryPlanInput& in) {
  const ModelConfig& c = in.config;
  const size_t e = in.dtype == StorageDtype::F32 ? 4 : 2;
  const auto specs = expected_params(c);
  const auto P = static_cast<size_t>(count_params(c));
  // 2-D tensors in the storage dtype; norms and biases stay fp32 (params.h).
  size_t P2 = 0, largest_viewed = 0;
  for (const auto& s : specs) {
    if (s.shape.size() == 2) {
      const size_t n = static_cast<size_t>(s.shape[0] * s.shape[1]);
      P2 += n;
      // Layer weights are read through the weight cache; embedding and head are not (weights.h).
      if (reads_through_weight_cache(s.role)) largest_viewed = std::max(largest_viewed, n);
    }
  }
  MemoryPlan m;
  m.parameters = P2 * e + (P - P2) * 4;
  // Gradient buffers: fp32 in our engine (GEMM output, read by the fp32 update); fp16 follows the
  // paper's Table 1 convention of fp16 gradients (the engine's fp16 buffers are fp32: 2x this).
  const size_t ge = in.dtype == StorageDtype::F16 ? 2 : 4;
  const bool fused_buffers = zero_buffer_rule({.optimizer = in.optimizer,
                                               .fused_gemm_update = in.fused_gemm_update,
                                               .clip_grad_value = in.clip_grad_value,
                                               .clip_grad_norm = in.clip_grad_norm,
                                               .dtype = in.dtype})
                                 .no_buffer;
  switch (in.optimizer) {
    case OptimizerKind::Lomo:
    case OptimizerKind::AdaLomo: {
      size_t held = 0, shared = 0;
      for (const auto& s : specs) {
        const auto n = static_cast<size_t>(spec_numel(s));
        if (c.tied_embeddings && s.role == ParamRole::Embedding) {
          held = n;
        } else if (!(fused_buffers && takes_fused_linear_update(s.role))) {
          shared = std::max(shared, n);
        }
      }
      m.gradients = (held + shared) * ge;
      if (in.optimizer == OptimizerKind::AdaLomo) {
        for (const auto& s : specs) {
          m.optimizer_states +=
              4 * static_cast<size_t>(s.shape.size() == 2 ? s.shape[0] + s.shape[1] : s.shape[0]);
        }
      }
      break;
    }
    case OptimizerKind::Sgd:
      m.gradients = P * e;
      m.optimizer_states = e == 4 ? 0 : 4 * P;
      break;
    case OptimizerKind::AdamW:
      m.gradients = P * e;
      m.optimizer_states = (e == 4 ? 8 : 12) * P;
      break;
  }
  LOMO_ASSERT(in.backend != nullptr, "the memory planner needs the run's backend");
  const auto [acts, work] = LlamaModel::buffer_bytes(
      c, {in.batch, in.seq, Pass::Training, in.checkpointing, in.dtype}, *in.backend);
  m.activations = acts;
  // 16-bit layer weights are read through one fp32 scratch the size of the largest of them.
  m.workspace = work + (e == 2 ? 4 * largest_viewed : 0);
  if (in.bf16_gemm) {
    m.workspace += 2 * 2 * static_cast<size_t>(bf16_scratch_elems(
                                c, in.batch * in.seq, !in.checkpointing.recompute_head));
  }
  return m;
}

Checkpointing choose_checkpointing(MemoryPlanInput in, size_t limit) {
  // The one-pass head first: it saves a whole forward product of the head (2·N·V·d) for a tile
  // of logits, where a kept block saves a block's forward for all its activations. Then the
  // prediction grows with every kept block: the first that fits, from all down, is the most.
  in.checkpointing = fit_head(in, Checkpointing::On, limit);
  const bool recompute_head = in.checkpointing.recompute_head;
  for (int64_t kept = in.config.n_layer; kept > 0; --kept) {
    in.checkpointing = Checkpointing{kept, recompute_head};
    if (limit == 0 || plan_memory(in).total() <= limit) return in.checkpointing;
  }
  return Checkpointing{0, recompute_head};
}

Checkpointing fit_head(MemoryPlanInput in, Checkpointing blocks, size_t limit) {
  in.checkpointing = Checkpointing{blocks.kept, false};
  if (limit == 0 || plan_memory(in).total() <= limit) return in.checkpointing;
  return Checkpointing{blocks.kept, true};
}

std::string describe_checkpointing(Checkpointing c, int64_t n_layer) {
  const int64_t kept = c.kept_of(n_layer);
  const std::string head = c.recompute_head ? ", LM head recomputed" : ", LM head in one pass";
  if (kept == 0) return "on" + head;
  if (kept == n_layer) return "off" + head;
  return std::to_string(kept) + " of " + std::to_string(n_layer) + " blocks keep activations" +
         head;
}

size_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream is(line.substr(13));
      size_t kb = 0;
      is >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

}  // namespace lomo
