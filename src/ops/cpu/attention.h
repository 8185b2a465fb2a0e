// Causal multi-head attention with grouped key/value heads (GQA), on right-padded batches.
// Query head h reads key/value head h / (n_head / n_kv). Sequence b has lengths[b] real tokens
// at t < lengths[b]; rows t ≥ lengths[b] are padding: output 0, probabilities 0, no gradient.
// Accumulation rule: forward overwrites out and probs; backward OVERWRITES dq, dk, dv.
#pragma once

#include <cstdint>

namespace lomo {

struct AttnDims {
  int64_t B, T, n_head, n_kv, head_dim;
};

// out(B, T, n_head, head_dim), probs(B, n_head, T, T) ← q(B, T, n_head, head_dim),
// k(B, T, n_kv, head_dim), v(B, T, n_kv, head_dim), lengths(B).
// probs = softmax(q·kᵀ/√head_dim) over keys j ≤ i; out = probs · v.
template <class T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v, const int32_t* lengths,
                       const AttnDims& dims);

// Scratch `work` holds one (T, T) block per (b, kv head) pair: B·n_kv·T·T elements.
// dP = dO·vᵀ; dv = Pᵀ·dO; dS = P ⊙ (dP − rowsum(dP ⊙ P)) / √hd; dq = dS·k; dk = dSᵀ·q.
template <class T>
void attention_backward(T* dq, T* dk, T* dv, T* work, const T* dout, const T* probs, const T* q,
                        const T* k, const T* v, const int32_t* lengths, const AttnDims& dims);

inline int64_t attention_work_elems(const AttnDims& d) {
  return d.B * d.n_kv * d.T * d.T;
}

}  // namespace lomo
