// The LLaMA-family decoder (LLaMA 1/2/3, Mistral, Qwen2, SmolLM), computing in fp32 on a
// Backend (ops/backend.h): forward, and a backward that walks the layers in reverse handing every
// parameter's gradient to a GradSink the moment it is complete (design §2). The model owns the
// schedule (which op runs when, on which buffer); the backend owns the arithmetic. Every buffer
// the model uses comes from the backend's allocator; the batch's token ids are copied there.
//
// Activation checkpointing, block by block: a checkpointed block keeps only its input from
// forward, and backward recomputes the block from it just before differentiating it. Because
// blocks are updated in reverse order, block l's weights are still unchanged when it is
// recomputed, so the recomputed activations are exactly those of the forward pass. Blocks that
// keep their activations skip the recomputation (a quarter of their FLOPs).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "core/memory.h"
#include "core/profile.h"
#include "model/batch.h"
#include "model/config.h"
#include "model/grad_sink.h"
#include "model/linear.h"
#include "model/lora.h"
#include "model/params.h"
#include "model/residency.h"
#include "model/weights.h"
#include "ops/backend.h"

namespace lomo {

// What backward recomputes instead of keeping from forward. Blocks: the last `kept` (the first to
// be differentiated) keep their activations; the others are recomputed. The LM head: with
// recompute_head its gradient pass makes the logits again (two passes, a few MiB of tiles);
// without, it runs in one pass over larger tiles (ops/lm_head.h). On = every block and the head
// recomputed (the least memory), Off = nothing recomputed. The memory planner picks both for what
// --memory-limit allows (train/memory_plan.h).
struct Checkpointing {
  int64_t kept = 0;  // ≥ n_layer: every block
  bool recompute_head = true;
  static const Checkpointing On;
  static const Checkpointing Off;
  bool operator==(const Checkpointing&) const = default;
  int64_t kept_of(int64_t n_layer) const { return kept < n_layer ? kept : n_layer; }
  bool keeps(int64_t l, int64_t n_layer) const { return l >= n_layer - kept_of(n_layer); }
};
inline constexpr Checkpointing Checkpointing::On{0, true};
inline constexpr Checkpointing Checkpointing::Off{INT64_MAX, false};

// Hands out 64-byte aligned sub-blocks of one buffer, or just counts when base is null.
class Carver {
 public:
  explicit Carver(float* base) : base_(base) {}
  float* take(int64_t n) {
    float* p = base_ ? base_ + used_ : nullptr;
    used_ += (n + 15) / 16 * 16;
    return p;
  }
  int32_t* take_i32(int64_t n) { return reinterpret_cast<int32_t*>(take(n)); }
  int64_t used() const { return used_; }

 private:
  float* base_;
  int64_t used_ = 0;
};

// What a step allocates for: its batch shape, whether it trains (backward) or only runs forward,
// which blocks keep activations, and how the 2-D weights are stored (16-bit heads are converted
// block by block).
enum class Pass { Forward, Training };
struct StepShape {
  int64_t B = 1, T = 1;
  Pass pass = Pass::Training;
  Checkpointing ckpt = Checkpointing::On;
  StorageDtype weights = StorageDtype::F32;
  // LoRA (model/lora.h): the adapters' rank (0: none), and the widest adapted input when the
  // adapters have dropout (its masked copy needs a scratch in training).
  int64_t lora_rank = 0;
  int64_t lora_dropout_in = 0;
  // The LM head takes LOMO's zero-buffer update (GradSink::fused_update): two passes over one
  // row tile of every token (ops/lm_head.h).
  bool head_update = false;
  // How the block inputs (the residual stream between blocks, what checkpointing keeps) are
  // stored: fp32, or 16-bit (bf16/fp16) with two fp32 scratch blocks to compute in.
  StorageDtype activations = StorageDtype::F32;
};

class LlamaModel {
 public:
  // `positions`: the longest sequence this model will run, which its RoPE table covers (a
  // workspace buffer: 2 MiB for SmolLM2's 8192 positions, 128 KiB for a run of 512 tokens);
  // 0 = the model's max_position.
  LlamaModel(const ModelConfig& config, ModelParams& params, MemoryTracker& tracker,
             Backend& backend, int64_t positions = 0);

  // Forward only. Returns the mean NLL over the batch's loss tokens; fills nll (B·T, 0 where no
  // loss) and logits (B·T·V) when given.
  double forward(const Batch& batch, std::vector<float>* nll = nullptr,
                 std::vector<float>* logits = nullptr);

  // Forward, then backward into `sink`. The loss is the mean NLL over loss tokens; gradients are
  // of loss · grad_scale. Returns the (unscaled) mean loss.
  double forward_backward(const Batch& batch, GradSink& sink, Checkpointing ckpt,
                          float grad_scale = 1.0f);

  const ModelConfig& config() const { return config_; }

  // Tokens per chunk of the MLP's dX in backward, d(silu(gate)·up) (Grads::dm): as many as fit
  // in N·max(n_head·head_dim, d_model) elements, the block the other gradients need anyway; all
  // N with LoRA adapters (an adapter's dX part is not chunked).
  static int64_t mlp_dx_rows(const ModelConfig& c, int64_t N, bool lora);

  ModelParams& params() { return params_; }
  Backend& backend() { return backend_; }
  // Asked before and after each layer's weights are used (null: everything resident).
  void set_residency(Residency* r) { residency_ = r ? r : &all_resident_; }
  // Linear layers multiply in bf16 (weights.h); the 2-D parameters must be stored in bf16.
  void set_bf16_gemm(bool on);
  // Store the block inputs (the residual stream between blocks) in `dtype`: fp32 (the default)
  // or 16-bit, rounded to nearest at each block boundary. Every block computes in fp32 from the
  // rounded value, in forward and in the recomputation alike, so backward differentiates exactly
  // the function forward computed.
  void set_activation_dtype(StorageDtype dtype) { act_dtype_ = dtype; }
  StorageDtype activation_dtype() const { return act_dtype_; }
  // LoRA adapters beside the linear layers (null: none); they must outlive the model. Dropout
  // masks are keyed by (seed, the step set by set_lora_step, layer, target).
  void set_lora(const LoraAdapters* adapters, uint64_t dropout_seed = 0);
  void set_lora_step(int64_t step) { lora_step_ = step; }
  // Phase timings of every later call go to `profile` (null: none), timed by its clock: made
  // by Backend::make_phase_clock, so that on a GPU each phase times its own work on the stream.
  void set_profile(StepProfile* profile) { profile_ = profile; }
  StepProfile* profile() const { return profile_; }

 private:
  struct LayerActs {  // everything block backward reads; N = B·T rows
    // The two norm outputs have no blocks of their own: each lives in `m` while it is read (m is
    // written after both, and read first in backward), and backward remakes it there from the
    // norm's input and rstd (rmsnorm_apply).
    float* rstd1;     // (N)            input_layernorm
    float* rstd2;     // (N)            post_attention_layernorm
    float* q;         // (N, n_head·head_dim) after RoPE
    float* k;         // (N, n_kv·head_dim)   after RoPE
    float* v;         // (N, n_kv·head_dim)
    float* stats;     // (B, n_head, T, 2) softmax max and 1/Σexp per query row
    float* attn;      // (N, n_head·head_dim) attention output
    float* h_mid;     // (N, d_model)   residual after attention
    float* gate;      // (N, d_ff)  } one block of N·max(2·d_ff, (n_head + 2·n_kv)·head_dim):
    float* up;        // (N, d_ff)  } dg, du in place, then dq, dk, dv, in backward
    float* m;         // (N, max(d_ff, d_model)) silu(gate) ⊙ up; earlier the norm outputs
  };
  struct Grads {       // backward temporaries (workspace)
    float* dh;         // (N, d_model)   gradient of the residual stream
    // (N, d_model) a norm output's gradient. Inside the blocks it is the final norm's output
    // block (xnf), dead once the LM head's backward is done; the head's own goes to dm.
    float* dxn;
    // (N, max(n_head·head_dim, d_model)): the head's d(norm output), then in every block
    // d(attention output), and d(silu(gate)·up) for dm_rows tokens at a time (dm_rows · d_ff
    // elements at most: the MLP's dX is made in row chunks, linear_backward_chunked).
    float* dm;
    int64_t dm_rows;
    // dg, du, dq, dk and dv have no blocks of their own: they overwrite the layer's gate/up
    // block, which nothing reads after the MLP's backward (LayerActs::gate).
  };

  struct Layout {
    std::vector<float*> block_in;  // fp32, or 16-bit elements in a float-aligned block
    float* x32 = nullptr;
    std::vector<LayerActs> layer_acts;
    float *xnf = nullptr, *rstdf = nullptr, *nll = nullptr;
    LmHeadTiles head_tiles;
    float *head_tile = nullptr, *head_w_block = nullptr;
    double* head_row_stats = nullptr;
    float* attn_work = nullptr;
    int32_t *ids = nullptr, *targets = nullptr, *lengths = nullptr;
    int32_t* embed_order = nullptr;
    int32_t* held_rows = nullptr;
    float* held_values = nullptr;
    float *lora_u = nullptr, *lora_g = nullptr, *lora_xd = nullptr;
    Grads grads{};
  };
  static void carve(const ModelConfig& c, const StepShape& s, const Backend& backend,
                    Carver& acts, Carver& work, Layout& L);
  // Bytes of the activation and workspace blocks a step of this shape carves. The memory
  // planner predicts them by a formula of its own (train/memory_plan.cpp), which
  // tests/test_memory_plan.cpp holds to these, byte for byte.
  static std::pair<size_t, size_t> buffer_bytes(const ModelConfig& c, const StepShape& s,
                                                const Backend& backend);
  void plan(const Batch& batch, Checkpointing ckpt, Pass pass, bool head_update = false);
  StepShape step_shape(const Batch& batch, Checkpointing ckpt, Pass pass) const;
  // The adapter call of layer l's target t in the current pass, or null when t has none.
  const LinearAdapter* adapter(int64_t l, LoraTarget t);
  // bf16 products with no adapter on the MLP: its d_ff-wide inputs (m; dg and du) take their
  // bf16 copies in their own storage once nothing reads their fp32 values, so the step needs no
  // d_ff-wide scratch slot (WeightCache::convert_in_place).
  bool mlp_in_place() const {
    return wc_.bf16_gemm() && !(lora_ != nullptr && lora_targets_mlp(lora_->config()));
  }
  void upload(const Batch& batch);
  LmHeadIo head_io(const Batch& batch);
  Param& head_param() { return params_.lm_head ? *params_.lm_head : *params_.embed; }
  void run_forward(const Batch& batch, Checkpointing ckpt);
  // x_out null: a recompute for the backward, which needs the block's activations but not its
  // output, so the down projection (a quarter of the block's weights) is skipped. x_out may be
  // x_in: x_in is last read before x_out is first written.
  void block_forward(int64_t l, const Batch& batch, const float* x_in, LayerActs& a, float* x_out);
  // Reads the block's input through block_input(l, g.dm) once d(attention) is done with g.dm.
  void block_backward(int64_t l, const Batch& batch, LayerActs& a, Grads& g, GradSink& sink);
  // Block l's stored input (l = n_layer: the last block's output) as a view of its storage.
  ParamView stored_block(int64_t l) const {
    return {block_in_[l], act_dtype_, n_tokens_, config_.d_model, 0};
  }
  // Block l's input as fp32: the stored block itself, or its 16-bit copy converted into
  // `scratch`, (N, d_model) fp32 that the caller has free.
  const float* block_input(int64_t l, float* scratch);
  // Where block l − 1's output (l = 0: the embedding's) is made: block_in_[l] itself, or x32_,
  // where the block's fp32 input was (block_forward computes in place); then commit_block(l, y)
  // stores it and leaves y holding what was stored. In training x32_ is Grads::dh, which the
  // forward pass does not use otherwise; backward converts block inputs into buffers free at
  // that moment (forward_backward).
  float* block_output(int64_t l);
  void commit_block(int64_t l, float* y);
  // Kept block l has its own set; every recomputed block shares the one after them.
  LayerActs& acts_for(int64_t l, Checkpointing ckpt) {
    const int64_t L = config_.n_layer, kept = ckpt.kept_of(L);
    return layer_acts_[l >= L - kept ? l - (L - kept) : kept];
  }

  const ModelConfig& config_;
  ModelParams& params_;
  MemoryTracker& tracker_;
  Backend& backend_;
  int64_t positions_;  // the longest sequence plan() accepts: the RoPE table's length
  RopeTable rope_;
  TrackedHostBytes rope_bytes_;  // rope_'s, in the tracker's workspace
  WeightCache wc_;  // weights as product operands
  StepProfile* profile_ = nullptr;
  Residency all_resident_;
  Residency* residency_ = &all_resident_;

  // Planned blocks, reused across steps while the batch shape allows.
  Buffer act_buf_;   // activations: block inputs, layer activations, final norm
  Buffer work_buf_;  // workspace: backward temporaries, per-token NLL, LM-head and attention scratch
  std::vector<float*> block_in_;       // n_layer + 1 of (N, d_model); [n_layer] = last block output
                                       // (act_dtype_ elements)
  StorageDtype act_dtype_ = StorageDtype::F32;
  int64_t n_tokens_ = 0;               // N of the current plan
  float* x32_ = nullptr;  // (N, d_model) fp32 block input, then output, in forward; 16-bit only
  std::vector<LayerActs> layer_acts_;  // 1 with checkpointing, n_layer without
  float* xnf_ = nullptr;               // (N, d_model) final norm output
  float* rstdf_ = nullptr;             // (N)
  float* nll_ = nullptr;               // (N)
  LmHeadTiles head_tiles_;
  float* head_tile_ = nullptr;          // (tile rows, tile cols) LM-head logits tile
  float* head_w_block_ = nullptr;       // (tile cols, d_model) fp32 block of a 16-bit head
  double* head_row_stats_ = nullptr;    // (N, 2)
  float* attn_work_ = nullptr;          // backend's attention scratch
  int32_t* ids_ = nullptr;              // (B, T) the batch's ids, in the backend's memory
  int32_t* targets_ = nullptr;          // (B, T)
  int32_t* lengths_ = nullptr;          // (B)
  int32_t* embed_order_ = nullptr;      // (B·T) training: embedding_update's scratch
  // A 16-bit tied table under the zero-buffer update: its looked-up rows, ascending (≤ B·T),
  // and their fp32 values between the head's part and the lookup's (≤ B·T, d_model).
  int32_t* held_rows_ = nullptr;
  float* held_values_ = nullptr;
  Grads grads_{};
  Pass pass_ = Pass::Forward;           // of the current plan
  const LoraAdapters* lora_ = nullptr;
  uint64_t lora_seed_ = 0;
  int64_t lora_step_ = 0;
  float* lora_u_ = nullptr;   // (N, r)
  float* lora_g_ = nullptr;   // (N, r)
  float* lora_xd_ = nullptr;  // (N, widest adapted input), dropout in training only
  LinearAdapter adapter_call_;
};

}  // namespace lomo
