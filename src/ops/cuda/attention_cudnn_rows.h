// The conversions around cuDNN's attention (ops/cuda/attention_cudnn.h): fp32 rows to bf16 and
// back with padding rows written as 0, and the per-sequence lengths cuDNN reads. Rows are
// (B, T, row) tensors; row t of sequence b is padding when lengths is not null and
// t ≥ lengths[b]. bf16 codes are core/half.h's (round to nearest even), as the CPU's.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace lomo::cuda {

// dst(B, T, row) ← bf16(src), 0 on padding rows.
void rows_to_bf16(uint16_t* dst, const float* src, const int32_t* lengths, int64_t B, int64_t T,
                  int64_t row, cudaStream_t stream);
// dst(B, T, row) ← fp32(src), 0 on padding rows.
void rows_from_bf16(float* dst, const uint16_t* src, const int32_t* lengths, int64_t B, int64_t T,
                    int64_t row, cudaStream_t stream);
// dst(B) ← lengths, or T for every sequence when lengths is null.
void sequence_lengths(int32_t* dst, const int32_t* lengths, int64_t B, int64_t T,
                      cudaStream_t stream);

}  // namespace lomo::cuda
