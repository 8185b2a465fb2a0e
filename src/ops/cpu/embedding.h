// Token embedding lookup.
// Accumulation rule: forward overwrites `out`; backward ADDS into `dtable` (the caller zeroes it,
// or, for tied weights, has already written the LM head's gradient there).
#pragma once

#include <cstdint>

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

}  // namespace lomo
