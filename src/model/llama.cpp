#include "model/llama.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "model/linear.h"

namespace lomo {

namespace {

// Marks a layer's weights in use for the scope: acquire on entry, release on exit (also when an
// exception leaves the scope).
class UsingLayer {
 public:
  UsingLayer(Residency& r, int64_t layer) : r_(r), layer_(layer) { r_.acquire(layer_); }
  ~UsingLayer() { r_.release(layer_); }
  UsingLayer(const UsingLayer&) = delete;
  UsingLayer& operator=(const UsingLayer&) = delete;

 private:
  Residency& r_;
  int64_t layer_;
};

// The RoPE table's length: `positions` (0: the model's max_position), checked against it.
int64_t rope_positions(const ModelConfig& c, int64_t positions) {
  if (positions == 0) return c.max_position;
  if (positions < 0 || positions > c.max_position) {
    throw Error("a model for sequences of " + std::to_string(positions) +
                " tokens: the model allows 1 to " + std::to_string(c.max_position) +
                " (max_position_embeddings)");
  }
  return positions;
}

}  // namespace

LlamaModel::LlamaModel(const ModelConfig& config, ModelParams& params, MemoryTracker& tracker,
                       Backend& backend, int64_t positions)
    : config_(config),
      params_(params),
      tracker_(tracker),
      backend_(backend),
      positions_(rope_positions(config, positions)),
      rope_(make_rope_table(config.rope, config.head_dim, positions_)),
      rope_bytes_(tracker, MemCategory::Workspace, rope_table_bytes(config.head_dim, positions_)),
      wc_(params, tracker, backend) {}

void LlamaModel::set_bf16_gemm(bool on) {
  if (on) {
    for (const auto& l : params_.layers) {
      for (const Param* w : {l.wq, l.wk, l.wv, l.wo, l.w_gate, l.w_up, l.w_down}) {
        if (w->dtype != StorageDtype::BF16)
          throw Error("bf16 products need bf16 weights; " + w->name + " is not (use --dtype bf16)");
      }
    }
  }
  wc_.set_bf16_gemm(on);
}

void LlamaModel::set_lora(const LoraAdapters* adapters, uint64_t dropout_seed) {
  lora_ = adapters;
  lora_seed_ = dropout_seed;
}

const LinearAdapter* LlamaModel::adapter(int64_t l, LoraTarget t) {
  if (lora_ == nullptr) return nullptr;
  const LoraAdapter* a = lora_->find(l, t);
  if (a == nullptr) return nullptr;
  const LoraConfig& cfg = lora_->config();
  LinearAdapter& c = adapter_call_;
  c.A = a->A;
  c.B = a->B;
  c.scale = cfg.scaling();
  c.dropout = pass_ == Pass::Training ? cfg.dropout : 0.0f;
  c.dropout_key = counter_key(lora_seed_, splitmix64(static_cast<uint64_t>(lora_step_)) ^
                                              static_cast<uint64_t>(l * kLoraTargetCount +
                                                                    static_cast<int>(t)));
  c.u = lora_u_;
  c.g = lora_g_;
  c.xd = lora_xd_;
  return &c;
}

int64_t LlamaModel::mlp_dx_rows(const ModelConfig& c, int64_t N, bool lora) {
  if (lora) return N;
  const int64_t wide = N * std::max(c.n_head * c.head_dim, c.d_model);
  return std::clamp<int64_t>(wide / c.d_ff, 1, N);
}

void LlamaModel::carve(const ModelConfig& c, const StepShape& s, const Backend& backend,
                       Carver& acts, Carver& work, Layout& L) {
  const int64_t B = s.B, T = s.T;
  const Checkpointing ckpt = s.ckpt;
  const bool backward = s.pass == Pass::Training;
  const StorageDtype weights = s.weights;
  const int64_t N = B * T, d = c.d_model, qd = c.n_head * c.head_dim, kvd = c.n_kv * c.head_dim,
                ff = c.d_ff;
  const AttnDims dims{B, T, c.n_head, c.n_kv, c.head_dim};
  // Forward only: one set for every block. Training: one per kept block, and one shared by the
  // recomputed blocks (acts_for).
  const int64_t kept = backward ? ckpt.kept_of(c.n_layer) : 0;
  const int64_t n_sets = kept + (kept < c.n_layer ? 1 : 0);
  const bool act16 = s.activations != StorageDtype::F32;
  L.block_in.assign(c.n_layer + 1, nullptr);
  for (auto& p : L.block_in) p = acts.take(act16 ? (N * d + 1) / 2 : N * d);
  L.layer_acts.assign(n_sets, LayerActs{});
  for (auto& a : L.layer_acts) {
    a.rstd1 = acts.take(N);
    a.rstd2 = acts.take(N);
    a.q = acts.take(N * qd);
    a.k = acts.take(N * kvd);
    a.v = acts.take(N * kvd);
    a.stats = acts.take(attention_stats_elems(dims));
    a.attn = acts.take(N * qd);
    a.h_mid = acts.take(N * d);
    a.gate = acts.take(N * std::max(2 * ff, qd + 2 * kvd));  // gate, up; dq, dk, dv in backward
    a.up = a.gate ? a.gate + N * ff : nullptr;
    a.m = acts.take(N * std::max(ff, d));
  }
  L.xnf = acts.take(N * d);
  L.rstdf = acts.take(N);
  L.nll = work.take(N);
  // The LM head runs outside every block and attention inside them: one scratch serves both.
  LOMO_ASSERT(!(s.head_update && !ckpt.recompute_head),
              "the LM head's zero-buffer update runs in two passes (Trainer::checkpointing)");
  L.head_tiles = lm_head_tiles(c.vocab, N, backward && !ckpt.recompute_head,
                               backward && s.head_update);
  const int64_t tile = (L.head_tiles.tile_elems(c.vocab) + 15) / 16 * 16;
  const int64_t w_block = weights != StorageDtype::F32 ? L.head_tiles.cols * d : 0;
  float* scratch =
      work.take(std::max(tile + w_block, backend.attention_workspace_elems(dims)));
  L.head_tile = scratch;
  L.head_w_block = scratch && w_block ? scratch + tile : nullptr;
  L.attn_work = scratch;
  L.head_row_stats = reinterpret_cast<double*>(work.take(2 * N * 2));
  // 16-bit block inputs: the forward pass's fp32 stream has a block of its own only without
  // backward; in training it is dh, unused until the LM head's backward.
  if (act16 && !backward) L.x32 = work.take(N * d);
  L.ids = work.take_i32(N);
  L.targets = work.take_i32(N);
  L.lengths = work.take_i32(B);
  if (s.lora_rank > 0) {
    L.lora_u = work.take(N * s.lora_rank);
    L.lora_g = work.take(N * s.lora_rank);
    if (backward && s.lora_dropout_in > 0) L.lora_xd = work.take(N * s.lora_dropout_in);
  }
  if (!backward) return;
  L.embed_order = work.take_i32(N);
  if (s.head_update && c.tied_embeddings && weights != StorageDtype::F32) {
    L.held_rows = work.take_i32(N);
    L.held_values = work.take(N * d);
  }
  L.grads.dh = work.take(N * d);
  if (act16) L.x32 = L.grads.dh;
  L.grads.dxn = L.xnf;
  const int64_t dm_rows = mlp_dx_rows(c, N, s.lora_rank > 0);
  L.grads.dm = work.take(std::max(N * std::max(qd, d), dm_rows * ff));
  L.grads.dm_rows = dm_rows;
}

std::pair<size_t, size_t> LlamaModel::buffer_bytes(const ModelConfig& c, const StepShape& s,
                                                   const Backend& backend) {
  Carver acts(nullptr), work(nullptr);
  Layout L;
  carve(c, s, backend, acts, work, L);
  return {static_cast<size_t>(acts.used()) * sizeof(float),
          static_cast<size_t>(work.used()) * sizeof(float)};
}

StepShape LlamaModel::step_shape(const Batch& batch, Checkpointing ckpt, Pass pass) const {
  StepShape s{batch.B, batch.T, pass, ckpt, params_.lm_head ? params_.lm_head->dtype
                                                             : params_.embed->dtype};
  if (lora_ != nullptr) {
    s.lora_rank = lora_->config().rank;
    if (lora_->config().dropout > 0) s.lora_dropout_in = lora_max_in(lora_->config(), config_);
  }
  return s;
}

void LlamaModel::plan(const Batch& batch, Checkpointing ckpt, Pass pass, bool head_update) {
  if (batch.T > positions_) {
    throw Error("a batch of " + std::to_string(batch.T) + " tokens per sequence is longer than the " +
                std::to_string(positions_) + " positions this model was made for (max_position " +
                std::to_string(config_.max_position) + ")");
  }
  StepShape shape = step_shape(batch, ckpt, pass);
  shape.head_update = head_update;
  shape.activations = act_dtype_;
  n_tokens_ = batch.B * batch.T;
  pass_ = pass;
  const auto [act_bytes, work_bytes] = buffer_bytes(config_, shape, backend_);
  ensure_capacity(act_buf_, backend_.allocator(), tracker_, MemCategory::Activations, act_bytes);
  ensure_capacity(work_buf_, backend_.allocator(), tracker_, MemCategory::Workspace, work_bytes);
  Carver acts(act_buf_.f32()), work(work_buf_.f32());
  Layout L;
  carve(config_, shape, backend_, acts, work, L);
  block_in_ = std::move(L.block_in);
  x32_ = L.x32;
  layer_acts_ = std::move(L.layer_acts);
  xnf_ = L.xnf;
  rstdf_ = L.rstdf;
  nll_ = L.nll;
  head_tiles_ = L.head_tiles;
  // A new pass: no input holds a bf16 copy in its own storage yet.
  wc_.forget_all_in_place();
  if (wc_.bf16_gemm()) {
    const Bf16Slots slots =
        bf16_scratch_elems(config_, n_tokens_, head_tiles_, mlp_in_place());
    wc_.reserve_act16(slots.wide, slots.narrow);
  }
  head_tile_ = L.head_tile;
  head_w_block_ = L.head_w_block;
  head_row_stats_ = L.head_row_stats;
  attn_work_ = L.attn_work;
  ids_ = L.ids;
  targets_ = L.targets;
  lengths_ = L.lengths;
  embed_order_ = L.embed_order;
  held_rows_ = L.held_rows;
  held_values_ = L.held_values;
  lora_u_ = L.lora_u;
  lora_g_ = L.lora_g;
  lora_xd_ = L.lora_xd;
  grads_ = L.grads;
}

void LlamaModel::upload(const Batch& batch) {
  const auto N = static_cast<size_t>(batch.B * batch.T);
  backend_.copy_to_device(ids_, batch.ids.data(), N * sizeof(int32_t));
  backend_.copy_to_device(targets_, batch.targets.data(), N * sizeof(int32_t));
  backend_.copy_to_device(lengths_, batch.lengths.data(), batch.lengths.size() * sizeof(int32_t));
}

void LlamaModel::block_forward(int64_t l, const Batch& batch, const float* x_in, LayerActs& a,
                               float* x_out) {
  const ModelConfig& c = config_;
  Backend& be = backend_;
  const UsingLayer using_layer(*residency_, l);
  const LayerParams& p = params_.layers[l];
  const int64_t N = batch.B * batch.T, d = c.d_model;
  float* xn = a.m;  // (N, d_model) each norm's output, until swiglu writes m
  wc_.forget_in_place(a.m);  // a kept block's m of the previous step, if the caller stopped early
  const AttnDims dims{batch.B, batch.T, c.n_head, c.n_kv, c.head_dim};
  {
    PhaseTimer t(profile_, Phase::Elementwise);
    be.rmsnorm_forward(xn, a.rstd1, x_in, p.attn_norm->f(), N, d, c.rms_norm_eps);
  }
  {
    PhaseTimer t(profile_, Phase::Linear);
    const WeightCache::SharedInputs shared(wc_);  // xn converted once for q, k, v
    linear_forward(a.q, xn, *p.wq, p.bq, N, wc_, adapter(l, LoraTarget::Q));
    linear_forward(a.k, xn, *p.wk, p.bk, N, wc_, adapter(l, LoraTarget::K));
    linear_forward(a.v, xn, *p.wv, p.bv, N, wc_, adapter(l, LoraTarget::V));
  }
  {
    PhaseTimer t(profile_, Phase::Elementwise);
    be.rope_forward(a.q, rope_, batch.B, batch.T, c.n_head, c.head_dim);
    be.rope_forward(a.k, rope_, batch.B, batch.T, c.n_kv, c.head_dim);
  }
  {
    PhaseTimer t(profile_, Phase::Attention);
    be.attention_forward(a.attn, a.stats, attn_work_, a.q, a.k, a.v, lengths_, dims);
  }
  {
    PhaseTimer t(profile_, Phase::Linear);
    linear_forward(a.h_mid, a.attn, *p.wo, p.bo, N, wc_, adapter(l, LoraTarget::O));
  }
  {
    PhaseTimer t(profile_, Phase::Elementwise);
    be.add(a.h_mid, x_in, N * d);
    be.rmsnorm_forward(xn, a.rstd2, a.h_mid, p.mlp_norm->f(), N, d, c.rms_norm_eps);
  }
  {
    PhaseTimer t(profile_, Phase::Linear);
    const WeightCache::SharedInputs shared(wc_);  // xn converted once for gate and up
    linear_forward(a.gate, xn, *p.w_gate, nullptr, N, wc_, adapter(l, LoraTarget::Gate));
    linear_forward(a.up, xn, *p.w_up, nullptr, N, wc_, adapter(l, LoraTarget::Up));
  }
  {
    PhaseTimer t(profile_, Phase::Elementwise);
    be.swiglu_forward(a.m, a.gate, a.up, N * c.d_ff);
  }
  if (!x_out) return;
  {
    PhaseTimer t(profile_, Phase::Linear);
    // Nothing reads m in fp32 after this product: backward's dW product reads this bf16 copy.
    if (mlp_in_place()) wc_.convert_in_place(a.m, N, c.d_ff);
    linear_forward(x_out, a.m, *p.w_down, nullptr, N, wc_, adapter(l, LoraTarget::Down));
  }
  PhaseTimer t(profile_, Phase::Elementwise);
  be.add(x_out, a.h_mid, N * d);
}

void LlamaModel::block_backward(int64_t l, const Batch& batch, LayerActs& a, Grads& g,
                                GradSink& sink) {
  const ModelConfig& c = config_;
  Backend& be = backend_;
  const UsingLayer using_layer(*residency_, l);
  LayerParams& p = params_.layers[l];
  const int64_t N = batch.B * batch.T, d = c.d_model;
  // g.dh holds dL/d(block output) on entry and dL/d(block input) on return.
  // In the forward pass this was: x_out = h_mid + m·W_downᵀ.
  // In place: gate and up become their gradients (nothing reads them afterwards).
  float* dg = a.gate;  // (N, d_ff)
  float* du = a.up;    // (N, d_ff)
  const int64_t ff = c.d_ff;
  // m is read only by the dW product now: its bf16 copy in place (done in forward for a kept
  // block).
  if (mlp_in_place() && !wc_.in_place(a.m)) wc_.convert_in_place(a.m, N, ff);
  if (g.dm_rows < N) {
    // d(silu(gate)·up) = dh·W_down a chunk of tokens at a time, each turned into dg, du at once
    // (the chunks' SwiGLU backward is timed under Linear); W_down changes after the last.
    PhaseTimer t(profile_, Phase::Linear);
    linear_backward_chunked(g.dm, g.dm_rows, g.dh, a.m, *p.w_down, nullptr, N, sink, wc_,
                            [&](int64_t r, int64_t n) {
                              be.swiglu_backward(dg + r * ff, du + r * ff, g.dm, a.gate + r * ff,
                                                 a.up + r * ff, n * ff);
                            });
  } else {
    {
      PhaseTimer t(profile_, Phase::Linear);
      linear_backward(g.dm, g.dh, a.m, *p.w_down, nullptr, N, DxMode::Overwrite, sink, wc_,
                      adapter(l, LoraTarget::Down));
    }
    PhaseTimer t(profile_, Phase::Elementwise);
    be.swiglu_backward(dg, du, g.dm, a.gate, a.up, N * ff);
  }
  float* xn = a.m;  // m is dead: it takes the norm outputs again, as in forward
  wc_.forget_in_place(a.m);
  // dg and du are read only by their products now.
  if (mlp_in_place()) {
    wc_.convert_in_place(dg, N, ff);
    wc_.convert_in_place(du, N, ff);
  }
  {
    PhaseTimer t(profile_, Phase::Elementwise);
    be.rmsnorm_apply(xn, a.h_mid, a.rstd2, p.mlp_norm->f(), N, d);
  }
  {
    PhaseTimer t(profile_, Phase::Linear);
    const WeightCache::SharedInputs shared(wc_);  // xn converted once for both dW products
    linear_backward(g.dxn, dg, xn, *p.w_gate, nullptr, N, DxMode::Overwrite, sink, wc_,
                    adapter(l, LoraTarget::Gate));
    linear_backward(g.dxn, du, xn, *p.w_up, nullptr, N, DxMode::Accumulate, sink, wc_,
                    adapter(l, LoraTarget::Up));
  }
  wc_.forget_in_place(dg);  // the block takes dq, dk, dv
  wc_.forget_in_place(du);
  // In the forward pass this was: xn2 = rmsnorm(h_mid); the residual gradient is already in dh.
  float* dw = sink.trains(*p.mlp_norm) ? sink.gradient_buffer(*p.mlp_norm) : nullptr;
  {
    PhaseTimer t(profile_, Phase::Elementwise);
    be.rmsnorm_backward(g.dh, dw, g.dxn, a.h_mid, a.rstd2, p.mlp_norm->f(), N, d);
  }
  if (dw != nullptr) {
    PhaseTimer t(profile_, Phase::Update);
    sink.consume(*p.mlp_norm, dw);
  }
  // In the forward pass this was: h_mid = x_in + attn·W_oᵀ.
  float* dattn = g.dm;  // (N, n_head·head_dim), reusing the MLP temporary
  {
    PhaseTimer t(profile_, Phase::Linear);
    linear_backward(dattn, g.dh, a.attn, *p.wo, p.bo, N, DxMode::Overwrite, sink, wc_,
                    adapter(l, LoraTarget::O));
  }
  const AttnDims dims{batch.B, batch.T, c.n_head, c.n_kv, c.head_dim};
  // dq, dk, dv take the gate/up block, dead since the MLP's backward (carve sizes it for both).
  float* dq = a.gate;                          // (N, n_head·head_dim)
  float* dk = dq + N * c.n_head * c.head_dim;  // (N, n_kv·head_dim)
  float* dv = dk + N * c.n_kv * c.head_dim;    // (N, n_kv·head_dim)
  {
    PhaseTimer t(profile_, Phase::Attention);
    be.attention_backward(dq, dk, dv, attn_work_, dattn, a.stats, a.q, a.k, a.v, lengths_,
                          dims);
  }
  // dattn is dead: g.dm takes the block's input again (a 16-bit one converted).
  const float* x_in = block_input(l, g.dm);  // (N, d_model)
  {
    PhaseTimer t(profile_, Phase::Elementwise);
    be.rope_backward(dq, rope_, batch.B, batch.T, c.n_head, c.head_dim);
    be.rope_backward(dk, rope_, batch.B, batch.T, c.n_kv, c.head_dim);
    be.rmsnorm_apply(xn, x_in, a.rstd1, p.attn_norm->f(), N, d);
  }
  {
    PhaseTimer t(profile_, Phase::Linear);
    const WeightCache::SharedInputs shared(wc_);  // xn converted once for the three dW products
    linear_backward(g.dxn, dq, xn, *p.wq, p.bq, N, DxMode::Overwrite, sink, wc_,
                    adapter(l, LoraTarget::Q));
    linear_backward(g.dxn, dk, xn, *p.wk, p.bk, N, DxMode::Accumulate, sink, wc_,
                    adapter(l, LoraTarget::K));
    linear_backward(g.dxn, dv, xn, *p.wv, p.bv, N, DxMode::Accumulate, sink, wc_,
                    adapter(l, LoraTarget::V));
  }
  // In the forward pass this was: xn1 = rmsnorm(x_in).
  dw = sink.trains(*p.attn_norm) ? sink.gradient_buffer(*p.attn_norm) : nullptr;
  {
    PhaseTimer t(profile_, Phase::Elementwise);
    be.rmsnorm_backward(g.dh, dw, g.dxn, x_in, a.rstd1, p.attn_norm->f(), N, d);
  }
  if (dw == nullptr) return;
  PhaseTimer t(profile_, Phase::Update);
  sink.consume(*p.attn_norm, dw);
}

const float* LlamaModel::block_input(int64_t l, float* scratch) {
  if (act_dtype_ == StorageDtype::F32) return block_in_[l];
  backend_.to_f32(scratch, stored_block(l), 0, n_tokens_ * config_.d_model);
  return scratch;
}

float* LlamaModel::block_output(int64_t l) {
  return act_dtype_ == StorageDtype::F32 ? block_in_[l] : x32_;
}

void LlamaModel::commit_block(int64_t l, float* y) {
  if (act_dtype_ == StorageDtype::F32) return;
  const int64_t n = n_tokens_ * config_.d_model;
  RoundingMode nearest;
  nearest.rounding = Rounding::Nearest;
  backend_.store(stored_block(l), y, nearest);
  backend_.to_f32(y, stored_block(l), 0, n);  // the next block reads what backward will
}

void LlamaModel::run_forward(const Batch& batch, Checkpointing ckpt) {
  const ModelConfig& c = config_;
  const int64_t N = batch.B * batch.T;
  for (int32_t id : batch.ids) LOMO_ASSERT(id < c.vocab, "token id out of range");
  upload(batch);
  float* x = block_output(0);  // (N, d_model) the residual stream, fp32
  {
    const UsingLayer using_layer(*residency_, kOutsideBlocks);
    PhaseTimer t(profile_, Phase::Elementwise);
    backend_.embedding_forward(x, ids_, params_.embed->view(), N);
    commit_block(0, x);
  }
  for (int64_t l = 0; l < c.n_layer; ++l) {
    float* y = block_output(l + 1);
    block_forward(l, batch, x, acts_for(l, ckpt), y);
    PhaseTimer t(profile_, Phase::Elementwise);
    commit_block(l + 1, y);
    x = y;
  }
  const UsingLayer using_layer(*residency_, kOutsideBlocks);
  PhaseTimer t(profile_, Phase::Elementwise);
  backend_.rmsnorm_forward(xnf_, rstdf_, x, params_.final_norm->f(), N, c.d_model,
                           c.rms_norm_eps);
}

LmHeadIo LlamaModel::head_io(const Batch& batch) {
  LmHeadIo io;
  io.xn = xnf_;
  io.targets = targets_;
  io.N = batch.B * batch.T;
  io.nll = nll_;
  io.tiles = head_tiles_;
  io.tile = head_tile_;
  io.w_block = head_w_block_;
  io.row_stats = head_row_stats_;
  if (wc_.bf16_gemm()) {
    const int64_t N = batch.B * batch.T, d = config_.d_model;
    uint16_t* xn16 = wc_.act16(0, N * d);  // (N, d)
    backend_.to_bf16(xn16, xnf_, N * d);
    io.xn16 = xn16;
    io.tile16 = wc_.act16(1, head_tiles_.tile_elems(config_.vocab));  // plan() reserved it
  }
  return io;
}

double LlamaModel::forward(const Batch& batch, std::vector<float>* nll,
                           std::vector<float>* logits) {
  plan(batch, Checkpointing::On, Pass::Forward);
  run_forward(batch, Checkpointing::On);
  const int64_t N = batch.B * batch.T;
  LmHeadIo io = head_io(batch);
  io.logits_out = logits;
  double sum;
  {
    const UsingLayer using_layer(*residency_, kOutsideBlocks);
    PhaseTimer t(profile_, Phase::LmHead);
    sum = backend_.lm_head_loss(head_param().view(), io);
  }
  if (nll) {
    nll->resize(static_cast<size_t>(N));
    backend_.copy_to_host(nll->data(), nll_, sizeof(float) * N);
  }
  return batch.loss_tokens > 0 ? sum / static_cast<double>(batch.loss_tokens) : 0.0;
}

double LlamaModel::forward_backward(const Batch& batch, GradSink& sink, Checkpointing ckpt,
                                    float grad_scale) {
  const ModelConfig& c = config_;
  const int64_t N = batch.B * batch.T, d = c.d_model;
  LOMO_ASSERT(batch.loss_divisor() > 0, "batch has no loss tokens");
  // The LM head and the loss, chunked. Its gradient lands in the sink's buffer, or, under the
  // zero-buffer update, never exists: each vocabulary block of W is updated inside the head's
  // gradient pass (ops/lm_head.h). A tied head's buffered gradient is held until the embedding
  // backward completes it (design §2 rule 4); its zero-buffer update applies the head's part
  // here (with the decay) and the lookup's part at the end.
  const bool tied = params_.lm_head == nullptr;
  Param& head = head_param();
  const bool head_trains = sink.trains(head);
  const std::optional<SgdStep> head_update =
      head_trains ? sink.fused_update(head) : std::nullopt;
  plan(batch, ckpt, Pass::Training, head_update.has_value());
  run_forward(batch, ckpt);

  LmHeadIo io = head_io(batch);
  io.dxn = grads_.dm;  // (N, d_model): grads_.dxn is xnf itself, which the head reads
  io.dW = head_trains && !head_update ? sink.gradient_buffer(head) : nullptr;  // null: frozen
  io.update = head_update ? &*head_update : nullptr;
  HeldRows held;  // a 16-bit tied table's looked-up rows, kept in fp32 (ops/tensor.h)
  if (held_rows_ != nullptr) {
    std::vector<int32_t> rows;  // (≤ N) ascending, distinct
    for (int32_t id : batch.ids) {
      if (id >= 0) rows.push_back(id);
    }
    std::sort(rows.begin(), rows.end());
    rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
    backend_.copy_to_device(held_rows_, rows.data(), rows.size() * sizeof(int32_t));
    held = {held_rows_, static_cast<int64_t>(rows.size()), held_values_};
    io.held = held;
  }
  io.grad_scale = grad_scale / static_cast<float>(batch.loss_divisor());
  // The embedding, final norm and head stay in use until the embedding backward at the end.
  const UsingLayer using_outer(*residency_, kOutsideBlocks);
  double loss;
  {
    PhaseTimer t(profile_, Phase::LmHead);
    loss = backend_.lm_head_loss(head.view(), io) / static_cast<double>(batch.loss_divisor());
  }
  // No parameter has changed yet: a non-finite loss stops here (design §2 rule 8; the head's
  // zero-buffer update returns before touching W when the loss is not finite).
  if (!std::isfinite(loss)) {
    throw NonFiniteError(
        std::string("the loss is ") + (std::isnan(loss) ? "nan" : loss > 0 ? "inf" : "-inf") +
        "; training stopped before any update (lower --lr, or use --clip-grad-norm)");
  }
  if (!tied && io.dW != nullptr) {
    PhaseTimer t(profile_, Phase::Update);
    sink.consume(head, io.dW);
  }
  // In the forward pass this was: xnf = rmsnorm(h_L).
  float* dw =
      sink.trains(*params_.final_norm) ? sink.gradient_buffer(*params_.final_norm) : nullptr;
  {
    PhaseTimer t(profile_, Phase::Elementwise);
    backend_.fill(grads_.dh, 0.0f, N * d);
    // xnf_ is dead once the head is done: it takes the last block's output again.
    backend_.rmsnorm_backward(grads_.dh, dw, grads_.dm, block_input(c.n_layer, xnf_), rstdf_,
                              params_.final_norm->f(), N, d);
  }
  if (dw != nullptr) {
    PhaseTimer t(profile_, Phase::Update);
    sink.consume(*params_.final_norm, dw);
  }

  for (int64_t l = c.n_layer - 1; l >= 0; --l) {
    LayerActs& a = acts_for(l, ckpt);
    if (!ckpt.keeps(l, c.n_layer)) {
      // The recompute reads the block's input from dm, free until block_backward.
      block_forward(l, batch, block_input(l, grads_.dm), a, /*x_out=*/nullptr);
    }
    block_backward(l, batch, a, grads_, sink);
  }

  // In the forward pass this was: h_0 = embed[ids]. A frozen embedding needs nothing.
  if (!sink.trains(*params_.embed)) return loss;
  if (std::optional<SgdStep> u = sink.fused_update(*params_.embed)) {
    // The zero-buffer update, row by row. Tied: the head's part and the decay are applied; this
    // is the lookup's part, from the held fp32 rows when the table is 16-bit.
    if (tied) u->keep = 1.0f;
    PhaseTimer t(profile_, Phase::Update);
    backend_.embedding_update(params_.embed->view(), grads_.dh, ids_, N, embed_order_, *u, held);
    return loss;
  }
  float* dembed = sink.gradient_buffer(*params_.embed);
  {
    PhaseTimer t(profile_, Phase::Elementwise);
    if (!tied) backend_.fill(dembed, 0.0f, params_.embed->numel());
    backend_.embedding_backward(dembed, grads_.dh, ids_, N, d);
  }
  PhaseTimer t(profile_, Phase::Update);
  sink.consume(*params_.embed, dembed);
  return loss;
}

}  // namespace lomo
