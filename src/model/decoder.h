// Inference with a key/value cache: a prompt is fed in one forward (or a few chunks of rows), then
// one token at a time, each attending to the cached keys and values of every earlier position
// (model/kv_cache.h) instead of recomputing the prefix. The schedule of a block is
// LlamaModel::block_forward's, with the new keys and values written straight into the cache rows
// of their positions, RoPE applied at those positions (rope_forward_at) and attention over the
// cache (attention_cached). Only the last position goes through the final norm and the LM head.
// Products run through the weight cache (model/weights.h) as in training: fp32, or bf16 with
// bf16 weights (`bf16_gemm`). Every buffer comes from the backend's allocator and the tracker:
// the cache as Activations, the per-step rows and the logits as Workspace.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/memory.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/params.h"
#include "model/weights.h"
#include "ops/backend.h"

namespace lomo {

struct DecoderOptions {
  int64_t capacity = 0;         // positions the cache holds (0: context())
  int64_t prefill_chunk = 512;  // rows per forward when feeding many tokens at once
  bool bf16_gemm = false;       // bf16 products; the 2-D parameters must be stored in bf16
};

class CachedDecoder {
 public:
  // `config`, `params` and `backend` must outlive the decoder.
  CachedDecoder(const ModelConfig& config, ModelParams& params, MemoryTracker& tracker,
                Backend& backend, const DecoderOptions& opts = {});

  // Positions the model attends over: max_position, or a smaller sliding_window (positions past
  // the window would need a windowed attention, which the cache does not do).
  int64_t context() const;
  int64_t capacity() const { return cache_->capacity(); }
  // Makes the cache hold at least `capacity` positions (≤ context()); growing it forgets every
  // position fed so far.
  void reserve(int64_t capacity);

  // Feeds `ids` at positions length() … length() + n − 1 and returns the logits (V) that predict
  // the next token, in host memory, valid until the next call. Throws lomo::Error when an id is
  // outside the vocabulary or the positions would pass capacity().
  const std::vector<float>& append(std::span<const int32_t> ids);
  // Forgets positions [n, length()): the next append continues at position n.
  void truncate(int64_t n);
  int64_t length() const { return static_cast<int64_t>(tokens_.size()); }
  // The ids at positions [0, length()).
  const std::vector<int32_t>& tokens() const { return tokens_; }
  const ModelConfig& config() const { return config_; }
  // Bytes of parameters one decoded token reads, as stored: every tensor once, except an untied
  // embedding, of which one row is read. Over the memory bandwidth, the floor of a token's time.
  size_t weight_bytes_per_token() const;

 private:
  void plan();
  void block_forward(int64_t l, float* x, int64_t n, int64_t past);
  void head_logits(const float* xn);  // xn(1, d_model) → logits_(V)

  const ModelConfig& config_;
  ModelParams& params_;
  MemoryTracker& tracker_;
  Backend& backend_;
  DecoderOptions opts_;
  RopeTable rope_;
  TrackedHostBytes rope_bytes_;
  WeightCache wc_;
  std::unique_ptr<KvCache> cache_;
  std::vector<int32_t> tokens_;
  std::vector<float> host_logits_;  // (V)

  // Carved from one workspace buffer for up to rows_ positions per forward.
  int64_t rows_ = 0;
  Buffer work_buf_;
  float* x_ = nullptr;      // (rows, d_model) residual stream
  float* xn_ = nullptr;     // (rows, d_model) norm outputs
  float* rstd_ = nullptr;   // (rows)
  float* q_ = nullptr;      // (rows, n_head·head_dim) after RoPE
  float* attn_ = nullptr;   // (rows, n_head·head_dim)
  float* h_mid_ = nullptr;  // (rows, d_model) residual after attention
  float* gate_ = nullptr;   // (rows, d_ff); then silu(gate) ⊙ up, in place
  float* up_ = nullptr;     // (rows, d_ff)
  float* attn_work_ = nullptr;
  float* logits_ = nullptr;      // (V)
  float* head_block_ = nullptr;  // (kHeadBlockRows, d_model) fp32 rows of a 16-bit head
  int32_t* ids_ = nullptr;       // (rows)
};

}  // namespace lomo
