// The backend op table: every computation the model and the optimizers run, declared once. A
// backend (ops/cpu today; ops/cuda next) implements all of it on its own memory; the model, the
// gradient sinks and the trainer call only this interface, so a new device is a new folder, not
// a new model. The CPU backend is the reference every other backend is tested against.
//
// Conventions for every op:
//  * Pointers are in the backend's memory (allocator()): host memory for the CPU, device memory
//    for an accelerator. copy_to_device / copy_to_host cross the boundary and block until done
//    (the host buffer may be reused at once). Exceptions today, for a device backend to handle:
//    parameters are loaded into host memory (model/loader.cpp; a device backend uploads them, or
//    the loader allocates through allocator()), the RoPE table is a host struct built once per
//    model (upload it once, keyed by its address), and LmHeadIo::logits_out is a host vector
//    (tests only).
//  * Ops that return a value (all_finite, any_beyond, sum_squares, lm_head_loss) block until it
//    is known; every other op may run asynchronously in the backend's order. Training's per-pass
//    checks use check_gradient, which returns nothing and so never waits.
//  * ADDS ops may add in any order: embedding_backward with repeated ids needs atomics on a GPU,
//    so a device backend matches the CPU to rounding there, not bit for bit.
//  * Activations and gradients are fp32 with the shape on the argument line; parameters travel as
//    ParamView (ops/tensor.h) because their storage may be 16-bit.
//  * Each op's accumulation rule is stated on it: OVERWRITES (the output's old contents are never
//    read: tests fill outputs with NaN before the call to prove it) or ADDS.
//  * Arithmetic is fp32, with fp64 where a reduction needs it, exactly as the CPU reference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/memory.h"
#include "core/profile.h"
#include "core/rounding.h"
#include "ops/attention.h"
#include "ops/lm_head.h"
#include "ops/rope.h"
#include "ops/tensor.h"

namespace lomo {

// LOMO / SGD on one tensor: p ← p·keep − step·g, in fp32, written back once (design §2 rule 5).
// keep = 1 − lr·wd, step = lr·c (c: the global-norm clipping coefficient).
struct SgdStep {
  float keep = 1.0f, step = 0.0f;
  RoundingMode rounding;  // 16-bit write-back; rounding.step is the training step
};

// AdaLomo on one tensor (optim/adalomo.h has the algorithm): β of this step, the clipping
// coefficient c, the learning rate and weight decay.
struct AdaLomoStep {
  double beta = 0;
  float grad_coef = 1.0f, lr = 0, weight_decay = 0;
  RoundingMode rounding;
};

// AdamW on one fp32 tensor, as torch.optim.AdamW (decoupled decay, bias-corrected moments).
struct AdamWStep {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float lr = 0, weight_decay = 0, grad_coef = 1.0f;
  float bias_correction1 = 1.0f, bias_correction2 = 1.0f;  // 1 − β^t
};

// One row of a backward pass's gradient-check table (optim/gradient_checks.h), written by
// Backend::check_gradient into the backend's memory: 16 bytes, one layout on every device.
struct GradientCheck {
  double sum_squares;  // Σ g_i² of the clamped gradient, fp64: inf or NaN iff some g_i is
  int32_t beyond;      // 1 when some raw |g_i| > the limit or g_i is NaN, else 0
  int32_t unused;
};
static_assert(sizeof(GradientCheck) == 16, "GradientCheck is a device layout");

class Backend {
 public:
  virtual ~Backend() = default;
  // "cpu (oneDNN, 2 threads)".
  virtual std::string name() const = 0;
  // Host threads the backend's kernels use.
  virtual int threads() const = 0;
  // Where activations, gradients, optimizer states and scratch live.
  virtual Allocator& allocator() = 0;
  // Bytes the allocator can still give now (the host's available memory for the CPU, the GPU's
  // free memory for CUDA): a run's default --memory-limit.
  virtual size_t memory_available() const = 0;
  // Bytes the backend itself holds on its device for its whole life, outside the tracker
  // (library workspaces; 0 for the CPU): the planner's MemoryPlan::untracked.
  virtual size_t untracked_bytes() const { return 0; }

  // Blocks until every op queued so far has run (nothing to wait for on the CPU, whose ops run
  // when called); ops never need it for correctness.
  virtual void synchronize() {}
  // What --profile times phases by: null for the host clock (the CPU, whose ops have run when
  // they return); a device's own timeline otherwise (a GPU's events on its stream).
  virtual std::unique_ptr<PhaseClock> make_phase_clock() { return nullptr; }
  // The device queue ops run on, for a library that queues its own work in order with them
  // (NCCL's collectives, dist/nccl_communicator.h): the cudaStream_t of a GPU backend; null on
  // the CPU, whose ops run when called.
  virtual void* native_queue() const { return nullptr; }

  // ---- memory -----------------------------------------------------------------------------
  virtual void copy_to_device(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;
  // dst ← src, both in the backend's memory (in order with the other ops).
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  // x(n) ← value. OVERWRITES.
  virtual void fill(float* x, float value, int64_t n) = 0;

  // ---- products ---------------------------------------------------------------------------
  // C = alpha·op(A)·op(B) + beta·C (ops/tensor.h). OVERWRITES C when beta = 0, else ADDS.
  virtual void matmul(const Matmul& m) = 0;

  // ---- layers -----------------------------------------------------------------------------
  // out(N, d) = table[ids[n]] in fp32, d = table.cols; ids[n] < 0 gives a zero row. OVERWRITES.
  virtual void embedding_forward(float* out, const int32_t* ids, ParamView table, int64_t N) = 0;
  // dtable(V, d) += dout[n] at row ids[n]; padding rows carry none. ADDS.
  virtual void embedding_backward(float* dtable, const float* dout, const int32_t* ids,
                                  int64_t N, int64_t d) = 0;
  // LOMO's zero-buffer update of the table where backward would scatter its gradient, never
  // making the (V, d) gradient: row v ← keep·row − step·Σ dout[n] over n with ids[n] = v (the
  // sum embedding_backward makes, in n order), written back once with s.rounding; rows no id
  // names get keep·row. order(N) is int32 scratch. held (rows listed ascending, may be empty):
  // those rows start from held.values instead of the table (a 16-bit tied table, whose head part
  // is already applied there in fp32). A device backend matches the CPU to rounding (the sums
  // may run in another order).
  virtual void embedding_update(ParamView table, const float* dout, const int32_t* ids, int64_t N,
                                int32_t* order, const SgdStep& s, const HeldRows& held) = 0;
  // RMSNorm (Hugging Face LlamaRMSNorm): y(N, d), rstd(N) ← x(N, d), w(d). OVERWRITES.
  virtual void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t N,
                               int64_t d, double eps) = 0;
  // y(N, d) ← x(N, d), rstd(N), w(d): forward's y again, bit-identical. OVERWRITES.
  virtual void rmsnorm_apply(float* y, const float* x, const float* rstd, const float* w,
                             int64_t N, int64_t d) = 0;
  // dx(N, d) ADDS (the residual gradient is already there); dw(d) OVERWRITES, or is null for a
  // frozen weight (only dx flows).
  virtual void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x,
                                const float* rstd, const float* w, int64_t N, int64_t d) = 0;
  // x(B, T, n_heads, head_dim) rotated in place (forward) or by the transpose (backward).
  virtual void rope_forward(float* x, const RopeTable& table, int64_t B, int64_t T,
                            int64_t n_heads, int64_t head_dim) = 0;
  virtual void rope_backward(float* dx, const RopeTable& table, int64_t B, int64_t T,
                             int64_t n_heads, int64_t head_dim) = 0;
  // Scratch elements (fp32) either attention pass needs for these shapes.
  virtual int64_t attention_workspace_elems(const AttnDims& dims) const = 0;
  // out(B, T, n_head, head_dim), stats(B, n_head, T, 2) ← q(B, T, n_head, hd), k, v(B, T, n_kv,
  // hd), lengths(B). OVERWRITES out, stats.
  virtual void attention_forward(float* out, float* stats, float* work, const float* q,
                                 const float* k, const float* v, const int32_t* lengths,
                                 const AttnDims& dims) = 0;
  // dq, dk, dv ← dout, stats, q, k, v. OVERWRITES dq, dk, dv.
  virtual void attention_backward(float* dq, float* dk, float* dv, float* work, const float* dout,
                                  const float* stats, const float* q, const float* k,
                                  const float* v, const int32_t* lengths,
                                  const AttnDims& dims) = 0;
  // rope_forward for rows at positions pos0 … pos0 + T − 1 instead of 0 … T − 1 (new tokens
  // appended after a KV cache). In place.
  virtual void rope_forward_at(float* x, const RopeTable& table, int64_t pos0, int64_t B,
                               int64_t T, int64_t n_heads, int64_t head_dim) = 0;
  // Scratch elements (fp32) attention_cached needs for these shapes.
  virtual int64_t attention_cached_workspace_elems(const KvAttnDims& dims) const = 0;
  // Attention over a KV cache (ops/attention.h, KvAttnDims): out(B, Tq, n_head, head_dim) ←
  // q(B, Tq, n_head, hd) at positions past … past + Tq − 1, k_cache and v_cache (B, capacity,
  // n_kv, hd) filled for positions [0, past + Tq). softmax(q·kᵀ/√hd) over keys j ≤ past + i,
  // sums of exponentials in fp64, as attention_forward. OVERWRITES out; work is scratch.
  virtual void attention_cached(float* out, float* work, const float* q, const float* k_cache,
                                const float* v_cache, const KvAttnDims& dims) = 0;
  // m(n) = silu(g) ⊙ u. OVERWRITES.
  virtual void swiglu_forward(float* m, const float* g, const float* u, int64_t n) = 0;
  // dg(n), du(n) ← dm, g, u; dg and du may alias g and u. OVERWRITES.
  virtual void swiglu_backward(float* dg, float* du, const float* dm, const float* g,
                               const float* u, int64_t n) = 0;
  // y(n) += x(n). ADDS.
  virtual void add(float* y, const float* x, int64_t n) = 0;
  // Inverted dropout with the counter-based mask of core/rng.h (dropout_keeps(key, i, p), key =
  // counter_key(seed, stream)): y(n) = keep ⊙ x / (1 − p). OVERWRITES.
  virtual void dropout(float* y, const float* x, int64_t n, float p, uint64_t key) = 0;
  // y(n) += alpha · keep ⊙ x / (1 − p), the same mask: dropout's backward. ADDS.
  virtual void dropout_add(float* y, const float* x, int64_t n, float p, float alpha,
                           uint64_t key) = 0;
  // Y(N, out): every row = b(out). OVERWRITES (a linear layer's product then adds into it).
  virtual void bias_rows(float* Y, const float* b, int64_t N, int64_t out) = 0;
  // db(out) = Σ_n dY(N, out), accumulated in fp64. OVERWRITES.
  virtual void bias_grad(float* db, const float* dY, int64_t N, int64_t out) = 0;
  // The fused LM head and cross-entropy (ops/lm_head.h); W(V, d). Returns Σ nll over the rows.
  virtual double lm_head_loss(ParamView W, const LmHeadIo& io) = 0;

  // ---- conversions ------------------------------------------------------------------------
  // dst(n) ← elements [begin, begin + n) of src as fp32. OVERWRITES.
  virtual void to_f32(float* dst, ParamView src, int64_t begin, int64_t n) = 0;
  // dst(n) ← src(n) rounded to nearest-even bf16. OVERWRITES.
  virtual void to_bf16(uint16_t* dst, const float* src, int64_t n) = 0;
  // x(n) fp32 ← its own values rounded to nearest-even bf16, in place: element i's code lands in
  // bytes [2i, 2i + 2) of x, so x holds a bf16 (n) array in its first half and its fp32 values
  // are gone (the bytes past 2n are left undefined). The codes equal to_bf16's.
  virtual void to_bf16_in_place(float* x, int64_t n) = 0;
  // p ← w32(p.numel()) in p's storage, with the rounding mode (a copy for fp32; nothing when w32
  // is p's own storage). Stochastic rounding keys element i by p.first + i.
  virtual void store(ParamView p, const float* w32, const RoundingMode& r) = 0;
  // x(n) ← stddev · N(0, 1) from the counter-based stream (seed, stream, first + i): x is
  // elements [first, first + n) of the stream, so a tensor drawn in pieces equals it drawn
  // whole. OVERWRITES.
  virtual void fill_normal(float* x, int64_t n, uint64_t seed, uint64_t stream, double stddev,
                           int64_t first) = 0;

  // ---- gradient checks and updates ------------------------------------------------------------
  // g(n) clamped to [−v, v] in place (the paper's clip by value); v ≤ 0: nothing.
  virtual void clip_by_value(float* g, int64_t n, float v) = 0;
  // Whether every element of g(n) is finite.
  virtual bool all_finite(const float* g, int64_t n) = 0;
  // Whether some |g_i| of g(n) > limit or g_i is NaN (an fp16 overflow).
  virtual bool any_beyond(const float* g, int64_t n, float limit) = 0;
  // Σ g_i² over g(n), in fp64.
  virtual double sum_squares(const float* g, int64_t n) = 0;
  // One tensor's row of a pass's gradient checks, queued like any op (nothing waits for it: the
  // table is read back once, after the pass): out->beyond ← any_beyond(g, n, limit) on the raw
  // g (0 when limit is not finite: not evaluated); then g(n) clamped to [−clip, clip] in place as
  // clip_by_value; then out->sum_squares ← sum_squares of the clamped g. OVERWRITES *out (in the
  // backend's memory).
  virtual void check_gradient(float* g, int64_t n, float clip, float limit,
                              GradientCheck* out) = 0;
  // p ← p·keep − step·g, g(p.numel()) (SgdStep).
  virtual void sgd_update(ParamView p, const float* g, const SgdStep& s) = 0;
  // AdaLomo's update of p from g, in place in g (g is the caller's scratch): row(rows) and
  // col(cols) for a matrix, or row(n) for a vector, are its second-moment states.
  virtual void adalomo_update(ParamView p, float* g, float* row, float* col,
                              const AdaLomoStep& s) = 0;
  // AdamW on an fp32 p with moments m, v (p.numel() each).
  virtual void adamw_update(ParamView p, const float* g, float* m, float* v,
                            const AdamWStep& s) = 0;
};

// Which backend a run uses: "cpu" (the only one in this build without CUDA) and its threads
// (0: all cores).
struct BackendOptions {
  std::string device = "cpu";
  int threads = 0;
  // The run multiplies in bf16 (--bf16-gemm on): a GPU backend may then run attention's
  // products in bf16 as well (cuDNN's fused attention); otherwise attention stays fp32.
  bool bf16_products = false;
};

// The backend for `opts`; an unknown or unavailable device is a lomo::Error naming it.
std::unique_ptr<Backend> make_backend(const BackendOptions& opts = {});

// A GPU run planned without its backend (`lomo memory --device cuda`, on any machine, in any
// build): what the CUDA backend declares, from the host formulas of ops/cuda/device_plan.h.
// Its attention scratch (fp32 elements) for `d`, with cuDNN's fused attention or without; the
// bytes it holds outside the tracker; whether a run with bf16 products takes attention through
// cuDNN (in a build with cuDNN, or planned as one where this build has no CUDA backend); and
// whether this build has the CUDA backend.
int64_t cuda_attention_workspace_elems(const AttnDims& d, bool cudnn);
size_t cuda_untracked_bytes();
bool cuda_attention_through_cudnn(bool bf16_products);
bool cuda_backend_built();

// --device's value read without opening anything: "cpu" → the host, "cuda" → GPU 0, "cuda:N" →
// GPU N; anything else is a lomo::Error naming it.
Device parse_device(const std::string& device);

}  // namespace lomo
