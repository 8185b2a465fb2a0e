#include "model/decoder.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "model/linear.h"
#include "model/llama.h"

namespace lomo {

namespace {

// Rows of a 16-bit LM head converted to fp32 at a time when products are fp32 (as the training
// head does, ops/lm_head.h): never an fp32 copy of the whole head.
constexpr int64_t kHeadBlockRows = 4096;

Param& head_param(ModelParams& p) {
  return p.lm_head ? *p.lm_head : *p.embed;
}

int64_t model_context(const ModelConfig& c) {
  return c.sliding_window > 0 ? std::min(c.max_position, c.sliding_window) : c.max_position;
}

}  // namespace

CachedDecoder::CachedDecoder(const ModelConfig& config, ModelParams& params, MemoryTracker& tracker,
                             Backend& backend, const DecoderOptions& opts)
    : config_(config),
      params_(params),
      tracker_(tracker),
      backend_(backend),
      opts_(opts),
      rope_(make_rope_table(config.rope, config.head_dim, model_context(config))),
      rope_bytes_(tracker, MemCategory::Workspace,
                  rope_table_bytes(config.head_dim, model_context(config))),
      wc_(params, tracker, backend) {
  if (opts_.bf16_gemm) {
    for (const auto& l : params_.layers) {
      for (const Param* w : {l.wq, l.wk, l.wv, l.wo, l.w_gate, l.w_up, l.w_down}) {
        if (w->dtype != StorageDtype::BF16)
          throw Error("bf16 products need bf16 weights; " + w->name + " is not (use --dtype bf16)");
      }
    }
  }
  wc_.set_bf16_gemm(opts_.bf16_gemm);
  LOMO_ASSERT(opts_.prefill_chunk > 0, "prefill_chunk must be positive");
  reserve(opts_.capacity > 0 ? opts_.capacity : context());
}

int64_t CachedDecoder::context() const {
  return model_context(config_);
}

void CachedDecoder::reserve(int64_t capacity) {
  if (capacity > context()) {
    throw Error("a sequence of " + std::to_string(capacity) + " positions is longer than the " +
                "model's context of " + std::to_string(context()) + " (max_position_embeddings" +
                (config_.sliding_window > 0 ? std::string(" / sliding_window") : "") + ")");
  }
  if (cache_ && cache_->capacity() >= capacity) return;
  cache_.reset();  // the old cache's memory goes back before the new one is taken
  cache_ = std::make_unique<KvCache>(config_, capacity, backend_, tracker_);
  tokens_.clear();
  plan();
}

void CachedDecoder::plan() {
  const ModelConfig& c = config_;
  const int64_t d = c.d_model, qd = c.n_head * c.head_dim, ff = c.d_ff, V = c.vocab;
  const int64_t cap = cache_->capacity();
  rows_ = std::min(opts_.prefill_chunk, cap);
  const int64_t R = rows_;
  const KvAttnDims dims{1, R, 0, cap, c.n_head, c.n_kv, c.head_dim};
  const bool block_head = head_param(params_).dtype != StorageDtype::F32 && !opts_.bf16_gemm;
  for (int pass = 0; pass < 2; ++pass) {  // count, then carve
    Carver w(pass == 0 ? nullptr : work_buf_.f32());
    x_ = w.take(R * d);
    xn_ = w.take(R * d);
    rstd_ = w.take(R);
    q_ = w.take(R * qd);
    attn_ = w.take(R * qd);
    h_mid_ = w.take(R * d);
    gate_ = w.take(R * ff);
    up_ = w.take(R * ff);
    attn_work_ = w.take(backend_.attention_cached_workspace_elems(dims));
    logits_ = w.take(V);
    head_block_ = block_head ? w.take(std::min(kHeadBlockRows, V) * d) : nullptr;
    ids_ = w.take_i32(R);
    if (pass == 0) {
      work_buf_.release();
      work_buf_ = Buffer(backend_.allocator(), tracker_, MemCategory::Workspace,
                         static_cast<size_t>(w.used()) * sizeof(float));
    }
  }
  if (opts_.bf16_gemm) {
    // Generation's products convert only their input (slot 0); slot 1 is backward's.
    wc_.act16(0, R * std::max({d, ff, qd}));
  }
  host_logits_.assign(static_cast<size_t>(V), 0.0f);
}

size_t CachedDecoder::weight_bytes_per_token() const {
  size_t bytes = 0;
  for (const Param& p : params_.all()) {
    const bool row_only = p.role == ParamRole::Embedding && params_.lm_head != nullptr;
    bytes += static_cast<size_t>(row_only ? p.shape[1] : p.numel()) * dtype_bytes(p.dtype);
  }
  return bytes;
}

void CachedDecoder::truncate(int64_t n) {
  LOMO_ASSERT(n >= 0 && n <= length(), "truncate beyond the fed positions");
  tokens_.resize(static_cast<size_t>(n));
  cache_->set_length(n);
}

void CachedDecoder::block_forward(int64_t l, float* x, int64_t n, int64_t past) {
  const ModelConfig& c = config_;
  Backend& be = backend_;
  const LayerParams& p = params_.layers[l];
  const int64_t d = c.d_model, kvd = c.n_kv * c.head_dim;
  float* k_new = cache_->k(l) + past * kvd;  // (n, n_kv·head_dim) rows of positions past …
  float* v_new = cache_->v(l) + past * kvd;  // (n, n_kv·head_dim)
  be.rmsnorm_forward(xn_, rstd_, x, p.attn_norm->f(), n, d, c.rms_norm_eps);
  linear_forward(q_, xn_, *p.wq, p.bq, n, wc_);
  linear_forward(k_new, xn_, *p.wk, p.bk, n, wc_);
  linear_forward(v_new, xn_, *p.wv, p.bv, n, wc_);
  be.rope_forward_at(q_, rope_, past, 1, n, c.n_head, c.head_dim);
  be.rope_forward_at(k_new, rope_, past, 1, n, c.n_kv, c.head_dim);
  const KvAttnDims dims{1, n, past, cache_->capacity(), c.n_head, c.n_kv, c.head_dim};
  be.attention_cached(attn_, attn_work_, q_, cache_->k(l), cache_->v(l), dims);
  // h_mid = x + attn·W_oᵀ
  linear_forward(h_mid_, attn_, *p.wo, p.bo, n, wc_);
  be.add(h_mid_, x, n * d);
  be.rmsnorm_forward(xn_, rstd_, h_mid_, p.mlp_norm->f(), n, d, c.rms_norm_eps);
  linear_forward(gate_, xn_, *p.w_gate, nullptr, n, wc_);
  linear_forward(up_, xn_, *p.w_up, nullptr, n, wc_);
  float* m = gate_;  // (n, d_ff) silu(gate) ⊙ up, in place
  be.swiglu_forward(m, gate_, up_, n * c.d_ff);
  // x_out = h_mid + m·W_downᵀ, over x (read for the last time above)
  linear_forward(x, m, *p.w_down, nullptr, n, wc_);
  be.add(x, h_mid_, n * d);
}

void CachedDecoder::head_logits(const float* xn) {
  const ModelConfig& c = config_;
  const int64_t d = c.d_model, V = c.vocab;
  Param& head = head_param(params_);
  // logits(1, V) = xn(1, d) · W(V, d)ᵀ, with the head's rows as stored (below).
  Matmul mm;
  mm.ta = Trans::No;
  mm.tb = Trans::Yes;
  mm.M = 1;
  mm.N = V;
  mm.K = d;
  mm.A = MatRef::f32(xn, d);
  mm.ldc = V;
  if (head.dtype == StorageDtype::F32) {
    mm.B = MatRef::f32(head.f(), d);
    mm.C = logits_;
    backend_.matmul(mm);
  } else if (opts_.bf16_gemm && head.dtype == StorageDtype::BF16) {
    mm.A = wc_.operand(xn, 1, d, 0);
    mm.B = MatRef::bf16(head.h(), d);
    mm.C = logits_;
    mm.precision = Precision::BF16;
    backend_.matmul(mm);
  } else {
    const int64_t block = std::min(kHeadBlockRows, V);
    for (int64_t v0 = 0; v0 < V; v0 += block) {
      const int64_t rows = std::min(block, V - v0);
      backend_.to_f32(head_block_, head.view(), v0 * d, rows * d);  // (rows, d)
      mm.N = rows;
      mm.B = MatRef::f32(head_block_, d);
      mm.C = logits_ + v0;
      backend_.matmul(mm);
    }
  }
}

const std::vector<float>& CachedDecoder::append(std::span<const int32_t> ids) {
  const ModelConfig& c = config_;
  const auto n = static_cast<int64_t>(ids.size());
  if (n == 0) throw Error("nothing to feed: no token ids");
  for (int32_t id : ids) {
    if (id < 0 || id >= c.vocab) {
      throw Error("token id " + std::to_string(id) + " is outside the model's vocabulary [0, " +
                  std::to_string(c.vocab) + ")");
    }
  }
  if (length() + n > capacity()) {
    throw Error("the sequence would reach " + std::to_string(length() + n) +
                " positions; the KV cache holds " + std::to_string(capacity()));
  }
  const int64_t d = c.d_model;
  int64_t last_rows = 0;
  for (int64_t off = 0; off < n; off += rows_) {
    const int64_t m = std::min(rows_, n - off), past = length();
    backend_.copy_to_device(ids_, ids.data() + off, static_cast<size_t>(m) * sizeof(int32_t));
    backend_.embedding_forward(x_, ids_, params_.embed->view(), m);
    for (int64_t l = 0; l < c.n_layer; ++l) block_forward(l, x_, m, past);
    tokens_.insert(tokens_.end(), ids.begin() + off, ids.begin() + off + m);
    cache_->set_length(length());
    last_rows = m;
  }
  // The next token's logits come from the last position alone.
  backend_.rmsnorm_forward(xn_, rstd_, x_ + (last_rows - 1) * d, params_.final_norm->f(), 1, d,
                           c.rms_norm_eps);
  head_logits(xn_);
  backend_.copy_to_host(host_logits_.data(), logits_, static_cast<size_t>(c.vocab) * sizeof(float));
  return host_logits_;
}

}  // namespace lomo
