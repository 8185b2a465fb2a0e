// Attention of new tokens over a key/value cache (inference; shapes in ops/attention.h,
// KvAttnDims). The prefill of a prompt (past = 0, Tq = its length, or chunks of it) and each
// decoded token (Tq = 1) both run here, over keys already rotated by RoPE and stored in the cache.
//
// Per (sequence, head), a block of up to kKvRows query rows at a time: S = scale·q·kᵀ over the
// keys the block's last row sees, each row's softmax over its own keys j ≤ past + i (the max,
// exponentials by vexp, their sum in fp64, as attention_forward), then out = P·v. Entries of a
// row past its own keys are zeroed before the product. The block lives in a per-thread scratch.
// Accumulation rule: OVERWRITES out.
#pragma once

#include <cstdint>

#include "ops/attention.h"

namespace lomo {

inline constexpr int64_t kKvRows = 64;  // query rows per block

// Scratch elements with `threads` OpenMP threads: one (kKvRows, capacity) block per thread.
inline int64_t kv_attention_work_elems(const KvAttnDims& d, int64_t threads) {
  return threads * kKvRows * d.capacity;
}

// out(B, Tq, n_head, hd) ← q(B, Tq, n_head, hd), k_cache, v_cache(B, capacity, n_kv, hd).
// `work`: kv_attention_work_elems with omp_get_max_threads().
template <class T>
void kv_attention_forward(T* out, T* work, const T* q, const T* k_cache, const T* v_cache,
                          const KvAttnDims& dims);

}  // namespace lomo
