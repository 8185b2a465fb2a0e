#include "train/memory_plan.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "dist/param_shards.h"
#include "model/lora.h"
#include "model/params.h"
#include "model/weights.h"
#include "optim/gradient_checks.h"
#include "ops/lm_head.h"
#include "ops/rope.h"

namespace lomo {

StorageDtype parse_storage_dtype(const std::string& s, const std::string& flag) {
  if (s == "fp32") return StorageDtype::F32;
  if (s == "bf16") return StorageDtype::BF16;
  if (s == "fp16") return StorageDtype::F16;
  throw Error(flag + ": \"" + s + "\" is not one of fp32, bf16, fp16");
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

namespace {

ZeroBufferRule zero_buffer_of(const MemoryPlanInput& in) {
  return zero_buffer_rule({.optimizer = in.optimizer,
                           .fused_gemm_update = in.fused_gemm_update,
                           .data_parallel = in.data_parallel,
                           .clip_grad_value = in.clip_grad_value,
                           .clip_grad_norm = in.clip_grad_norm,
                           .dtype = in.dtype});
}

// Whether the LM head takes the zero-buffer update: then it runs in two passes, with every token
// in one row tile (ops/lm_head.h).
bool head_takes_update(const MemoryPlanInput& in) {
  return !in.base_frozen && zero_buffer_of(in).no_buffer;
}

// Bytes of n fp32 (or int32) elements in the step's activation or workspace block, where every
// buffer starts 64-byte aligned.
size_t f32s(int64_t n) {
  return static_cast<size_t>((n + 15) / 16 * 16) * 4;
}

// What one block keeps for its backward (docs/memory.md "Activations"), for N = B·T tokens.
size_t block_activation_bytes(const ModelConfig& c, int64_t B, int64_t T) {
  const int64_t N = B * T, d = c.d_model, qd = c.n_head * c.head_dim, kvd = c.n_kv * c.head_dim,
                ff = c.d_ff;
  return 2 * f32s(N)                              // 1/rms of the two norms, per token
         + f32s(N * qd) + 2 * f32s(N * kvd)       // q and k after RoPE, v
         + f32s(2 * B * c.n_head * T)             // softmax max and 1/Σexp per query row
         + f32s(N * qd)                           // attention output, wo's input
         + f32s(N * d)                            // the residual after attention
         + f32s(N * std::max(2 * ff, qd + 2 * kvd))  // gate and up; dq, dk, dv in backward
         + f32s(N * std::max(ff, d));             // silu(gate)·up; each norm's output before it
}

// The activation block of one training step.
size_t activation_bytes(const ModelConfig& c, int64_t B, int64_t T, Checkpointing ckpt,
                        StorageDtype act) {
  const int64_t N = B * T, L = c.n_layer;
  // Every block that keeps its activations has its own set; the recomputed ones share one.
  const int64_t kept = ckpt.kept_of(L);
  const int64_t sets = kept + (kept < L ? 1 : 0);
  // The input of every block, and the last block's output: N·d elements of 4 or 2 bytes.
  const int64_t block_in = act == StorageDtype::F32 ? N * c.d_model : (N * c.d_model + 1) / 2;
  return static_cast<size_t>(L + 1) * f32s(block_in)
         + static_cast<size_t>(sets) * block_activation_bytes(c, B, T)
         + f32s(N * c.d_model) + f32s(N);  // the final norm's output and 1/rms
}

// The workspace block of one training step, and the scratch the weights need.
size_t workspace_bytes(const ModelConfig& c, const MemoryPlanInput& in, int64_t largest_viewed,
                       int64_t widest_viewed_in) {
  const int64_t B = in.batch, T = in.seq, N = B * T, d = c.d_model,
                qd = c.n_head * c.head_dim, V = c.vocab;
  const bool sixteen = in.dtype != StorageDtype::F32;
  const LmHeadTiles head =
      lm_head_tiles(V, N, !in.checkpointing.recompute_head, head_takes_update(in));
  // The head's logits tile (and, for a 16-bit head, one block of its rows in fp32) and the
  // attention's scratch are never live together: one buffer, the larger of the two.
  const int64_t head_scratch =
      (head.tile_elems(V) + 15) / 16 * 16 + (sixteen ? head.cols * d : 0);
  const AttnDims dims{B, T, c.n_head, c.n_kv, c.head_dim};
  const int64_t attention_scratch = in.backend != nullptr
                                        ? in.backend->attention_workspace_elems(dims)
                                        : cuda_attention_workspace_elems(dims, in.cuda->cudnn);
  size_t w = f32s(N)                                        // per-token NLL
             + f32s(std::max(head_scratch, attention_scratch))
             + f32s(4 * N)                                  // running max and Σexp (fp64)
             + 2 * f32s(N) + f32s(B)                        // ids, targets, lengths (int32)
             // (16-bit block inputs are computed in fp32 in dh and dm, which hold no gradient
             // in the forward pass, and in the recompute before its backward)
             + f32s(N)                                      // the embedding update's order
             // a 16-bit tied table's looked-up rows and their fp32 values (zero-buffer update)
             + (head_takes_update(in) && c.tied_embeddings && sixteen
                    ? f32s(N) + f32s(N * d)
                    : 0)
             + f32s(N * d)  // dh; a block's d(norm output) takes the final norm's output
             // the head's d(norm output), d(attention), d(silu(gate)·up) in row chunks
             + f32s(std::max(N * std::max(qd, d),
                             LlamaModel::mlp_dx_rows(c, N, in.lora.enabled()) * c.d_ff));
  // 16-bit layer weights are read through one fp32 scratch (model/weights.h): the size of the
  // largest of them for products in fp32; for bf16 products only the fused update reads it, whose
  // GEMM writes W in fp32, a block of rows at a time, before it is rounded back.
  const bool fused_update = !in.base_frozen && zero_buffer_of(in).fused_update;
  if (sixteen && !in.bf16_gemm) w += 4 * static_cast<size_t>(largest_viewed);
  if (sixteen && in.bf16_gemm && fused_update) {
    w += 4 * static_cast<size_t>(weight_row_block_elems(largest_viewed, widest_viewed_in));
  }
  // The RoPE table: cos and sin for every position of the longest sequence.
  w += rope_table_bytes(c.head_dim, T);
  // bf16 products: two slots of bf16 operands (model/weights.h); the d_ff-wide ones are
  // converted in their own storage unless an adapter on the MLP reads their fp32 values.
  if (in.bf16_gemm) {
    const Bf16Slots slots = bf16_scratch_elems(c, N, head, !lora_targets_mlp(in.lora));
    w += 2 * static_cast<size_t>(slots.wide + slots.narrow);
  }
  // LoRA: drop(X)·Aᵀ and dY·B, (N, r) each; with dropout, drop(X) of the widest adapted input.
  if (in.lora.enabled()) {
    w += 2 * f32s(N * in.lora.rank);
    if (in.lora.dropout > 0) w += f32s(N * lora_max_in(in.lora, c));
  }
  return w;
}

// AdaLomo's fp32 statistics: rows + cols per matrix, n per vector.
size_t adalomo_state_bytes(const std::vector<ParamSpec>& specs) {
  size_t b = 0;
  for (const auto& s : specs) {
    b += 4 * static_cast<size_t>(s.shape.size() == 2 ? s.shape[0] + s.shape[1] : s.shape[0]);
  }
  return b;
}

// Parameters and gradients of one rank of --parallel shard over N = in.shard_ranks (the layout
// is dist/param_shards.h's, s = ParamShards::shard_elems): every tensor's shard, s·e bytes;
// gathered N·s·e each, the embedding, final norm and head (held through the training pass) and
// the largest block. Gradients, fp32: the tied embedding's whole gradient held (N·s), one buffer
// of the largest other padded tensor (N·s), and, for LOMO, one shard's (the largest s) that the
// update reads (AdaLomo updates the gathered whole tensor: no shard buffer). AdaLomo's states
// are replicated, as without sharding (plan_memory adds them).
void plan_sharded(const MemoryPlanInput& in, const std::vector<ParamSpec>& specs, size_t e,
                  MemoryPlan& m) {
  const int N = in.shard_ranks;
  size_t shards = 0, outer = 0, held = 0, shared = 0, one_shard = 0;
  std::map<int64_t, size_t> block;  // layer → its gathered bytes
  for (const auto& s : specs) {
    const int64_t n = spec_numel(s), sh = ParamShards::shard_elems(n, N);
    const size_t es = s.shape.size() == 2 ? e : 4;  // norms and biases stay fp32
    const auto whole = static_cast<size_t>(sh * N);
    shards += static_cast<size_t>(sh) * es;
    if (s.layer == kOutsideBlocks) {
      outer += whole * es;
    } else {
      block[s.layer] += whole * es;
    }
    if (in.config.tied_embeddings && s.role == ParamRole::Embedding) {
      held = whole;
    } else {
      shared = std::max(shared, whole);
    }
    one_shard = std::max(one_shard, static_cast<size_t>(sh));
  }
  size_t largest_block = 0;
  for (const auto& [layer, bytes] : block) largest_block = std::max(largest_block, bytes);
  m.parameters = shards + outer + largest_block;
  m.gradients = (held + shared + (in.optimizer == OptimizerKind::Lomo ? one_shard : 0)) * 4;
}

}  // namespace

MemoryPlan plan_memory(const MemoryPlanInput& in) {
  const ModelConfig& c = in.config;
  const bool paper = in.convention == MemoryConvention::Paper;
  if (!paper) check_optimizer_storage(in.optimizer, in.dtype);
  LOMO_ASSERT(in.backend != nullptr || in.cuda.has_value(),
              "the memory planner needs the run's backend or a device to plan for");
  const size_t e = in.dtype == StorageDtype::F32 ? 4 : 2;
  const auto specs = expected_params(c);
  const auto P = static_cast<size_t>(count_params(c));
  // 2-D tensors in the storage dtype; norms and biases stay fp32 (params.h).
  size_t P2 = 0;
  int64_t largest_viewed = 0, widest_viewed_in = 0;
  for (const auto& s : specs) {
    if (s.shape.size() == 2) {
      P2 += static_cast<size_t>(s.shape[0] * s.shape[1]);
      // Layer weights are read through the weight cache; embedding and head are not (weights.h).
      if (reads_through_weight_cache(s.role)) {
        largest_viewed = std::max(largest_viewed, s.shape[0] * s.shape[1]);
        widest_viewed_in = std::max(widest_viewed_in, s.shape[1]);
      }
    }
  }
  MemoryPlan m;
  m.parameters = P2 * e + (P - P2) * 4;
  if (in.shard_ranks > 0) {
    if ((in.optimizer != OptimizerKind::Lomo && in.optimizer != OptimizerKind::AdaLomo) ||
        in.lora.enabled()) {
      throw Error("--parallel shard trains with --optimizer lomo or adalomo, without LoRA");
    }
    plan_sharded(in, specs, e, m);
    if (in.optimizer == OptimizerKind::AdaLomo) m.optimizer_states = adalomo_state_bytes(specs);
  }
  // Gradient buffers are fp32 in the engine (GEMM output, read by the fp32 update); the paper
  // counts them in the storage dtype.
  const size_t ge = paper ? e : 4;
  const bool fused_buffers = zero_buffer_of(in).no_buffer;
  // A frozen base (plain LoRA) is never differentiated: no gradient, no state of its own.
  const auto base_optimizer = in.base_frozen ? std::nullopt : std::optional(in.optimizer);
  if (base_optimizer && in.shard_ranks == 0) switch (*base_optimizer) {
    case OptimizerKind::Lomo:
    case OptimizerKind::AdaLomo: {
      size_t held = 0, shared = 0;
      // Without any buffer for the matrices (every one takes the zero-buffer update, the tied
      // embedding too), only norms and biases share one.
      for (const auto& s : specs) {
        const auto n = static_cast<size_t>(spec_numel(s));
        if (fused_buffers && takes_fused_update(s.role)) continue;
        if (c.tied_embeddings && s.role == ParamRole::Embedding) {
          held = n;
        } else {
          shared = std::max(shared, n);
        }
      }
      m.gradients = (held + shared) * ge;
      if (in.optimizer == OptimizerKind::AdaLomo) m.optimizer_states = adalomo_state_bytes(specs);
      break;
    }
    case OptimizerKind::AdamW:
      m.gradients = P * ge;
      m.optimizer_states = (e == 4 ? 8 : 12) * P;  // m, v (and the master copy)
      break;
    case OptimizerKind::Sgd:
      m.gradients = P * ge;
      m.optimizer_states = e == 4 ? 0 : 4 * P;  // master copy (paper convention only)
      break;
  }
  if (in.lora.enabled()) {
    const auto a = static_cast<size_t>(lora_param_count(in.lora, c));
    m.parameters += 4 * a;
    m.gradients += 4 * a;
    m.optimizer_states += 8 * a;
  }
  m.activations = activation_bytes(c, in.batch, in.seq, in.checkpointing, in.activation_dtype);
  m.workspace = workspace_bytes(c, in, largest_viewed, widest_viewed_in);
  // LOMO's and AdaLomo's sinks queue each gradient's checks into one table, read once per pass.
  if (!in.base_frozen &&
      (in.optimizer == OptimizerKind::Lomo || in.optimizer == OptimizerKind::AdaLomo)) {
    m.workspace += GradientChecks::table_bytes(specs.size());
  }
  m.untracked = in.backend != nullptr ? in.backend->untracked_bytes() : cuda_untracked_bytes();
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
  // The one-pass head needs the head's whole gradient, which the zero-buffer update never makes.
  if (head_takes_update(in)) return Checkpointing{blocks.kept, true};
  in.checkpointing = Checkpointing{blocks.kept, false};
  if (limit == 0 || plan_memory(in).total() <= limit) return in.checkpointing;
  return Checkpointing{blocks.kept, true};
}

std::string describe_gradient_memory(const MemoryPlanInput& in) {
  const bool tied = in.config.tied_embeddings;
  const std::string largest =
      std::string("one buffer of the largest tensor") +
      (tied ? ", and the tied embedding's gradient held from the LM head to the lookup" : "");
  if (in.base_frozen) return "none: the base is frozen; the adapters' gradients are kept";
  switch (in.optimizer) {
    case OptimizerKind::Sgd:
    case OptimizerKind::AdamW:
      return "every gradient stored: " + std::string(optimizer_name(in.optimizer)) +
             " steps after backward";
    case OptimizerKind::AdaLomo:
      return largest + ": AdaLomo's factored statistics need each tensor's whole gradient";
    case OptimizerKind::Lomo:
      break;
  }
  const ZeroBufferRule r = zero_buffer_of(in);
  if (r.no_buffer) {
    return "no matrix has a gradient (zero-buffer update: linear weights inside their GEMM, the "
           "LM head per vocabulary block in its second pass, the embedding row by row); one "
           "buffer of the largest norm or bias vector";
  }
  if (in.shard_ranks > 0) {
    return "one buffer of the largest tensor whole" +
           std::string(tied ? ", and the tied embedding's held from the LM head to the lookup," : "") +
           " padded for the reduce-scatter, and one buffer of a shard: --parallel shard reduces "
           "each gradient over the ranks and each updates its shard (the zero-buffer update has "
           "no gradient to reduce)";
  }
  if (!in.fused_gemm_update) return largest + ": --fused-gemm-update off";
  if (in.data_parallel) {
    return largest + ": --parallel dp sums each gradient over the ranks before the update, so "
                     "it must exist (the zero-buffer update has none to sum)";
  }
  if (in.clip_grad_value) return largest + ": --clip-grad-value clamps the materialised gradient";
  return largest + ": " +
         (in.clip_grad_norm ? "--clip-grad-norm's norm pass" : "fp16's overflow check") +
         " materialises every gradient before the update";
}

std::string describe_checkpointing(Checkpointing c, int64_t n_layer) {
  const int64_t kept = c.kept_of(n_layer);
  const std::string head = c.recompute_head ? ", LM head recomputed" : ", LM head in one pass";
  if (kept == 0) return "on" + head;
  if (kept == n_layer) return "off" + head;
  return std::to_string(kept) + " of " + std::to_string(n_layer) + " blocks keep activations" +
         head;
}

}  // namespace lomo
