// Causal multi-head attention with grouped key/value heads (GQA), on right-padded batches.
// Query head h reads key/value head h / (n_head / n_kv). Sequence b has lengths[b] real tokens
// at t < lengths[b]; rows t ≥ lengths[b] are padding: output 0, no gradient.
//
// The (T, T) probabilities are never stored: forward keeps two numbers per query row, the row
// maximum m and the reciprocal of Σ_j exp(s_j − m), and backward recomputes P = exp(S − m)·r from
// q, k and them, bit-identical to the forward's P (same product, same expression). The one
// (T, T) block a (b, head) pair needs lives in a per-thread scratch.
// Accumulation rule: forward overwrites out and stats; backward OVERWRITES dq, dk, dv.
#pragma once

#include <cstdint>

#include "ops/attention.h"

namespace lomo {

// Elements of the scratch either pass needs with `threads` OpenMP threads: two (T, T) blocks
// per thread.
inline int64_t attention_work_elems(const AttnDims& d, int64_t threads) {
  return threads * 2 * d.T * d.T;
}

// out(B, T, n_head, head_dim), stats(B, n_head, T, 2) ← q(B, T, n_head, head_dim),
// k(B, T, n_kv, head_dim), v(B, T, n_kv, head_dim), lengths(B).
// P = softmax(q·kᵀ/√head_dim) over keys j ≤ i; out = P · v. `work`: attention_work_elems with
// the number of threads this call may use (omp_get_max_threads()).
template <class T>
void attention_forward(T* out, T* stats, T* work, const T* q, const T* k, const T* v,
                       const int32_t* lengths, const AttnDims& dims);

// dP = dO·vᵀ; dv = Pᵀ·dO; dS = P ⊙ (dP − rowsum(dP ⊙ P)) / √hd; dq = dS·k; dk = dSᵀ·q.
template <class T>
void attention_backward(T* dq, T* dk, T* dv, T* work, const T* dout, const T* stats, const T* q,
                        const T* k, const T* v, const int32_t* lengths, const AttnDims& dims);

}  // namespace lomo
