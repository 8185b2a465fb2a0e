// The conversions around cuDNN's attention: ops/cuda/attention_cudnn_rows.h.
#include "core/half.h"
#include "ops/cuda/attention_cudnn_rows.h"
#include "ops/cuda/cuda_util.h"

namespace lomo::cuda {
namespace {

__device__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ int64_t grid_stride() {
  return static_cast<int64_t>(blockDim.x) * gridDim.x;
}
// Whether element i of a (B, T, row) tensor lies in a real row.
__device__ bool real_row(int64_t i, const int32_t* lengths, int64_t T, int64_t row) {
  if (lengths == nullptr) return true;
  const int64_t bt = i / row;
  return bt % T < lengths[bt / T];
}

__global__ void rows_to_bf16_kernel(uint16_t* dst, const float* src, const int32_t* lengths,
                                    int64_t n, int64_t T, int64_t row) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    dst[i] = real_row(i, lengths, T, row) ? f32_to_bf16(src[i]) : uint16_t{0};
  }
}

__global__ void rows_from_bf16_kernel(float* dst, const uint16_t* src, const int32_t* lengths,
                                      int64_t n, int64_t T, int64_t row) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    dst[i] = real_row(i, lengths, T, row) ? bf16_to_f32(src[i]) : 0.0f;
  }
}

__global__ void sequence_lengths_kernel(int32_t* dst, const int32_t* lengths, int64_t B,
                                        int64_t T) {
  for (int64_t b = first_index(); b < B; b += grid_stride()) {
    dst[b] = lengths != nullptr ? lengths[b] : static_cast<int32_t>(T);
  }
}

}  // namespace

void rows_to_bf16(uint16_t* dst, const float* src, const int32_t* lengths, int64_t B, int64_t T,
                  int64_t row, cudaStream_t stream) {
  const int64_t n = B * T * row;
  if (n <= 0) return;
  rows_to_bf16_kernel<<<grid_for(n), kBlock, 0, stream>>>(dst, src, lengths, n, T, row);
  check_launch("rows_to_bf16_kernel");
}

void rows_from_bf16(float* dst, const uint16_t* src, const int32_t* lengths, int64_t B, int64_t T,
                    int64_t row, cudaStream_t stream) {
  const int64_t n = B * T * row;
  if (n <= 0) return;
  rows_from_bf16_kernel<<<grid_for(n), kBlock, 0, stream>>>(dst, src, lengths, n, T, row);
  check_launch("rows_from_bf16_kernel");
}

void sequence_lengths(int32_t* dst, const int32_t* lengths, int64_t B, int64_t T,
                      cudaStream_t stream) {
  if (B <= 0) return;
  sequence_lengths_kernel<<<grid_for(B), kBlock, 0, stream>>>(dst, lengths, B, T);
  check_launch("sequence_lengths_kernel");
}

}  // namespace lomo::cuda
