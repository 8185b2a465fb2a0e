// Causal multi-head attention with grouped key/value heads (GQA), on right-padded batches.
// Query head h reads key/value head h / (n_head / n_kv). Sequence b has lengths[b] real tokens
// at t < lengths[b]; rows t ≥ lengths[b] are padding: output 0, no gradient.
//
// Fused: the (T, T) probabilities are never stored. Work is cut into blocks of kAttnBlock
// positions; a query block holds the rows of all heads of one kv group (R = group · 64 rows, head
// by head), so each key/value block is read once for the whole group. Products on blocks go
// through block_gemm (ops/cpu/block_gemm.h).
//
// Scores and probabilities are kept transposed, keys by rows (Sᵀ = k·qᵀ): qᵀ is packed once per
// query block, the key and value rows are read in place, and each row's max, sums and D run
// element-wise down the columns, vectorised across query rows, with no horizontal reduction.
//
// Forward, one task per (b, kv group, query block): online softmax over key blocks j ≤ the block's
// last row: per row a running max m, a running Σ exp(s − m) in fp64 and an fp32 output
// accumulator, both rescaled by exp(m_old − m_new) when the max grows; out = acc / Σ. stats keep,
// per row, the final max m and r = 1/Σ_j exp(s_j − m) (0, 0 for padding rows).
//
// Backward, two tasks per (b, kv group), query blocks in order: part 0 takes the first nb/√2 query
// blocks (about half the causal work), part 1 the rest. Per query block, P = exp(S − m)·r is
// recomputed from q, k and the stats, and dP = dO·vᵀ; both are kept for the block's stripe
// (T, R), which gives D_i = Σ_j P_ij·dP_ij (in fp64) without the forward's output: five block
// products per (query block, key block), none spent recomputing O. dv and dk accumulate over query
// blocks in a fixed order; part 0 owns the dk, dv rows of the keys its blocks see, part 1 the
// later rows and keeps its terms for the earlier ones apart, added after both parts are done
// (pairs run in waves of four per thread, so only a wave's terms are held). So
// the results do not depend on the thread count or the schedule (test_attention.cpp checks it bit
// for bit). The stripe makes the scratch O(R·T) per thread instead of O(R·head_dim): the price of
// not recomputing O (two more products per block pair, 7 instead of 5).
// Accumulation rule: forward OVERWRITES out and stats; backward OVERWRITES dq, dk, dv.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/attention.h"

namespace lomo {

inline constexpr int64_t kAttnBlock = 64;  // positions per query block = keys per key block

// Scratch elements one thread needs, the larger of the two passes, rounded up to 16 (64 bytes of
// fp32) so that every thread's part starts aligned. With R = (n_head / n_kv) · kAttnBlock and
// B64 = kAttnBlock:
//   forward:  2R (fp64 sums) + 2R (maxima, rescaling) + 2·R·hd (qᵀ block, output) + R·B64 (Sᵀ)
//   backward: 2R (fp64 D) + 3R (max, 1/Σ, D per row) + 5·R·hd (q, qᵀ, dO, dOᵀ, dq blocks)
//             + 2·R·T (Pᵀ, dPᵀ stripe)
inline int64_t attention_thread_elems(const AttnDims& d) {
  const int64_t R = d.n_head / d.n_kv * kAttnBlock, hd = d.head_dim;
  const int64_t fwd = 4 * R + 2 * R * hd + R * kAttnBlock;
  const int64_t bwd = 5 * R + 5 * R * hd + 2 * R * d.T;
  return (std::max(fwd, bwd) + 15) / 16 * 16;
}

// Backward runs its (b, kv group) pairs in waves of this many (both parts of each pair, then their
// merge), so that only one wave's second-part terms are held at a time: four pairs per thread,
// eight tasks, so that the wait at the end of each wave stays small against its work.
inline int64_t attention_wave_pairs(const AttnDims& d, int64_t threads) {
  return std::min(d.B * d.n_kv, 4 * std::max<int64_t>(1, threads));
}

// Elements of the scratch either pass needs with `threads` OpenMP threads: backward's (2, T, hd)
// terms of a wave's second parts for the keys before their cut, then
// threads · attention_thread_elems(d); O(threads · (n_head/n_kv) · 64 · (T + hd)).
inline int64_t attention_work_elems(const AttnDims& d, int64_t threads) {
  return attention_wave_pairs(d, threads) * 2 * d.T * d.head_dim +
         threads * attention_thread_elems(d);
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
