// The memory planner: every category of design §3 predicted from the config alone, before any
// weight is read. The prediction is a formula of its own (memory_plan.cpp, docs/memory.md), not a
// call into the code that allocates: tests/test_memory_plan.cpp checks it against the tracked
// peaks, to the byte, for every configuration the engine runs, and against the process's RSS.
// The only inputs taken from the ops are the scratch sizes they declare: the backend's attention
// scratch and the LM head's tile schedule (ops/lm_head.h).
//
// Parameters P elements of e bytes (fp32 4, bf16/fp16 2; norms and biases stay fp32). Gradients
// are fp32 in the engine whatever the storage: LOMO and AdaLomo keep one buffer the size of the
// largest tensor (block linear weights excluded under the zero-buffer update), plus the tied
// embedding's held gradient; SGD and AdamW keep all P. Optimizer states: AdaLomo fp32 rows +
// cols per matrix (n per vector); AdamW fp32 m and v (8P). SGD and AdamW with 16-bit weights
// need fp32 master copies, which the engine does not implement: refused, as the trainer does.
// LoRA adds 4·A bytes of adapters, 4·A of their gradients and 8·A of AdamW states (A adapter
// elements), and 2·N·r (+ N·widest input with dropout) of scratch.
// MemoryConvention::Paper counts as the paper's Table 1 does instead: gradients in the storage
// dtype, and the master copies (4P) of SGD and AdamW (12P with m and v) in half precision.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "model/config.h"
#include "model/llama.h"
#include "ops/backend.h"
#include "train/trainer.h"

namespace lomo {

// "fp32", "bf16" or "fp16"; anything else is a lomo::Error naming `flag`.
StorageDtype parse_storage_dtype(const std::string& s, const std::string& flag = "--dtype");
const char* storage_dtype_name(StorageDtype d);

enum class MemoryConvention { Engine, Paper };

struct MemoryPlanInput {
  ModelConfig config;
  // The backend the run will use: its scratch (attention) is part of the workspace, and what it
  // holds outside the tracker is MemoryPlan::untracked. Required unless `cuda` is set.
  const Backend* backend = nullptr;
  // A GPU run planned without its backend (`lomo memory --device cuda`, no GPU needed): the CUDA
  // backend's declarations (ops/backend.h's cuda_* formulas) for an sm >= 80 GPU; cudnn: attention
  // through cuDNN's fused kernels (a run with bf16 products, in a build with cuDNN).
  struct CudaPlan {
    bool cudnn = false;
  };
  std::optional<CudaPlan> cuda;
  OptimizerKind optimizer = OptimizerKind::Lomo;
  StorageDtype dtype = StorageDtype::F32;
  int64_t batch = 1, seq = 1;
  Checkpointing checkpointing = Checkpointing::On;
  bool fused_gemm_update = true;
  bool clip_grad_norm = false;   // the norm pass needs every gradient materialised
  bool clip_grad_value = false;  // as does clamping
  bool data_parallel = false;    // as does summing over ranks (batch: one rank's share)
  // --parallel shard over this many ranks (0: not sharded; data_parallel is then set too): every
  // tensor's shard, the gathered embedding, final norm and head, one gathered block; the whole
  // gradients padded for the reduce-scatter, and one shard's gradient (dist/param_shards.h).
  int shard_ranks = 0;
  bool bf16_gemm = false;        // two bf16 activation copies per linear product (weights.h)
  // The block inputs' storage (LlamaModel::set_activation_dtype): 16-bit halves them and adds
  // two fp32 blocks of (N, d_model) to compute in.
  StorageDtype activation_dtype = StorageDtype::F32;
  MemoryConvention convention = MemoryConvention::Engine;
  // LoRA (model/lora.h; rank 0: none): the adapters (fp32), their gradients (all kept) and
  // AdamW's m and v; scratch for their products. A frozen base (--base-lr 0) has no gradient
  // buffer and no optimizer state of its own.
  LoraConfig lora;
  bool base_frozen = false;
};

struct MemoryPlan {
  size_t parameters = 0, gradients = 0, optimizer_states = 0, activations = 0, workspace = 0;
  // What the five categories and the tracker count.
  size_t total() const {
    return parameters + gradients + optimizer_states + activations + workspace;
  }
  // Device memory the backend holds outside the tracker (a GPU's library workspaces: cuBLASLt's,
  // the reduction scratch; 0 on the CPU). Not in total(); the device's own (CUDA context, cuDNN
  // handle) is in neither.
  size_t untracked = 0;
};

// Throws lomo::Error for a configuration the engine refuses (Engine convention).
MemoryPlan plan_memory(const MemoryPlanInput& in);

// `--checkpointing auto`: the one-pass LM head if it fits within `limit` (0 = no limit), then the
// most blocks that can keep their activations, so a run recomputes only as much as memory
// requires. When even full checkpointing exceeds the limit this returns Checkpointing::On, and
// the caller's limit check refuses with the numbers.
Checkpointing choose_checkpointing(MemoryPlanInput in, size_t limit);

// `--checkpointing on|off`: those blocks, and the one-pass LM head if it fits within `limit`.
Checkpointing fit_head(MemoryPlanInput in, Checkpointing blocks, size_t limit);

// Why the gradient term is what it is: which tensors take the zero-buffer update, and what keeps
// a buffer and why (printed by `lomo memory`).
std::string describe_gradient_memory(const MemoryPlanInput& in);

// "on", "off" or "k of n blocks keep activations", and how the LM head runs.
std::string describe_checkpointing(Checkpointing c, int64_t n_layer);

}  // namespace lomo
