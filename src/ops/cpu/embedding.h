// Token embedding lookup.
// Accumulation rule: forward overwrites `out`; backward ADDS into `dtable` (the caller zeroes it,
// or, for tied weights, has already written the LM head's gradient there).
#pragma once

#include <cstdint>

#include "ops/backend.h"

namespace lomo {

// out(N, d) = table[ids[n]]; ids[n] < 0 marks padding and gives a zero row.
template <class T>
void embedding_forward(T* out, const int32_t* ids, const T* table, int64_t N, int64_t d);

// out(N, d) = table[ids[n]] for a bf16 table, rows converted to fp32 as they are read.
// (fp16 when `f16`).
void embedding_forward_bf16(float* out, const int32_t* ids, const uint16_t* table, int64_t N, int64_t d, bool f16 = false);

// dtable(V, d) += dout[n] at row ids[n]; padding rows carry no gradient.
template <class T>
void embedding_backward(T* dtable, const T* dout, const int32_t* ids, int64_t N, int64_t d);

// LOMO's zero-buffer update of table(V, d) from dout(N, d) at ids(N), without the (V, d)
// gradient: row v ← keep·row − step·g_v, g_v = Σ dout[n] over n with ids[n] = v, summed in n
// order from 0 in fp32 (the sums embedding_backward makes); rows no id names get keep·row (left
// alone when keep = 1). Written back once per element as sgd_update does (16-bit storage with
// s.rounding at element index v·d + j). order(N) is int32 scratch: the token indices sorted by
// id. Rows listed in `held` start from held.values (fp32) instead of the table.
void embedding_update(ParamView table, const float* dout, const int32_t* ids, int64_t N,
                      int32_t* order, const SgdStep& s, const HeldRows& held);

}  // namespace lomo
