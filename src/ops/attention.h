// Causal multi-head attention with grouped key/value heads (GQA), on right-padded batches: the
// shapes every backend's attention op shares. Query head h reads key/value head h / (n_head /
// n_kv). Sequence b has lengths[b] real tokens at t < lengths[b]; rows t ≥ lengths[b] are
// padding: output 0, no gradient. Forward keeps two numbers per query row for backward (the
// softmax statistics: on the CPU the row's max and 1/Σ exp, 0 and 0 on padding rows), never the
// (T, T) probabilities; no backend needs a (T, T) scratch either (the CPU's fused kernel:
// ops/cpu/attention.h).
#pragma once

#include <cstdint>

namespace lomo {

struct AttnDims {
  int64_t B, T, n_head, n_kv, head_dim;
};

// Elements of the softmax statistics forward writes and backward reads: (B, n_head, T, 2).
inline int64_t attention_stats_elems(const AttnDims& d) { return d.B * d.n_head * d.T * 2; }

// Attention of new query rows over a key/value cache (inference, model/decoder.h). Each of B
// sequences has its keys and values cached for positions [0, past + Tq) (the Tq new ones
// included); its Tq queries sit at positions past … past + Tq − 1, and query i attends to keys
// j ≤ past + i (causal). Caches are laid out (B, capacity, n_kv, head_dim), so appending a
// position writes one contiguous row per sequence.
struct KvAttnDims {
  int64_t B, Tq, past, capacity, n_head, n_kv, head_dim;
};

}  // namespace lomo
