// Conversions between fp32 compute and 16-bit storage, and fill_normal, on the GPU (the backend
// ops of the same names: ops/backend.h). The per-element rules are the CPU's (core/half.h,
// core/rounding.h, ops/element/): the same fp32 gives the same 16-bit code, stochastic rounding
// included, whatever the device.
#include "core/error.h"
#include "core/half.h"
#include "core/rounding.h"
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/cuda_util.h"
#include "ops/element/normal.h"
#include "ops/element/update.h"

namespace lomo::cuda {
namespace {

__device__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ int64_t grid_stride() {
  return static_cast<int64_t>(blockDim.x) * gridDim.x;
}

// dst(n) ← src(n) read in its 16-bit format T.
template <StorageDtype T>
__global__ void load16_kernel(float* dst, const uint16_t* src, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) dst[i] = load16(T, src, i);
}

// dst(n) ← src(n) rounded to nearest-even bf16.
__global__ void to_bf16_kernel(uint16_t* dst, const float* src, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) dst[i] = f32_to_bf16(src[i]);
}

// The first kInPlaceHead elements of x in place (to_bf16_in_place): one block reads them all,
// waits, then writes their codes over the first half of what it read.
constexpr int kInPlaceHead = 4 * kBlock;
__global__ void to_bf16_in_place_head_kernel(float* x, int64_t n) {
  float v[4];
  for (int j = 0; j < 4; ++j) {
    const int64_t i = threadIdx.x + j * static_cast<int64_t>(blockDim.x);
    v[j] = i < n ? x[i] : 0.0f;
  }
  __syncthreads();
  auto* dst = reinterpret_cast<uint16_t*>(x);
  for (int j = 0; j < 4; ++j) {
    const int64_t i = threadIdx.x + j * static_cast<int64_t>(blockDim.x);
    if (i < n) dst[i] = f32_to_bf16(v[j]);
  }
}

// Elements [s, e) of x in place, e ≤ 2s: they read [s, e) and write fp32 elements [s/2, e/2),
// which earlier launches read, so no thread writes what another reads.
__global__ void to_bf16_in_place_piece_kernel(float* x, int64_t s, int64_t e) {
  auto* dst = reinterpret_cast<uint16_t*>(x);
  for (int64_t i = s + first_index(); i < e; i += grid_stride()) dst[i] = f32_to_bf16(x[i]);
}

// dst(n) ← w32(n) in the 16-bit format of `st`, element i keyed by its index in the tensor.
__global__ void store16_kernel(uint16_t* dst, const float* w32, int64_t n, element::Store16 st) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) dst[i] = st(w32[i], i);
}

// x(n) ← stddev · N(0, 1) from the stream (seed, stream, first + i).
__global__ void fill_normal_kernel(float* x, int64_t n, uint64_t seed, uint64_t stream,
                                   double stddev, int64_t first) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    x[i] = element::normal(seed, stream, static_cast<uint64_t>(first + i), stddev);
  }
}

}  // namespace

void CudaBackend::to_f32(float* dst, ParamView src, int64_t begin, int64_t n) {
  if (n <= 0) return;
  if (src.dtype == StorageDtype::F32) {
    check(cudaMemcpyAsync(dst, src.f32() + begin, sizeof(float) * static_cast<size_t>(n),
                          cudaMemcpyDeviceToDevice, stream_),
          "to_f32: copying fp32 elements");
    return;
  }
  const uint16_t* h = src.u16() + begin;  // (n)
  if (src.dtype == StorageDtype::F16) {
    load16_kernel<StorageDtype::F16><<<grid_for(n), kBlock, 0, stream_>>>(dst, h, n);
  } else {
    load16_kernel<StorageDtype::BF16><<<grid_for(n), kBlock, 0, stream_>>>(dst, h, n);
  }
  check_launch("to_f32 (load16_kernel)");
}

void CudaBackend::to_bf16(uint16_t* dst, const float* src, int64_t n) {
  if (n <= 0) return;
  to_bf16_kernel<<<grid_for(n), kBlock, 0, stream_>>>(dst, src, n);
  check_launch("to_bf16_kernel");
}

void CudaBackend::to_bf16_in_place(float* x, int64_t n) {
  if (n <= 0) return;
  // As the CPU's: a first run whose reads all precede its writes, then pieces [s, 2s), one
  // launch each (stream order separates them): about log2(n / 4096) launches.
  const int64_t head = std::min<int64_t>(n, kInPlaceHead);
  to_bf16_in_place_head_kernel<<<1, kBlock, 0, stream_>>>(x, head);
  check_launch("to_bf16_in_place_head_kernel");
  for (int64_t s = head; s < n; s *= 2) {
    const int64_t e = std::min(2 * s, n);
    to_bf16_in_place_piece_kernel<<<grid_for(e - s), kBlock, 0, stream_>>>(x, s, e);
    check_launch("to_bf16_in_place_piece_kernel");
  }
}

void CudaBackend::store(ParamView p, const float* w32, const RoundingMode& r) {
  const int64_t n = p.numel();
  if (n <= 0) return;
  if (p.dtype == StorageDtype::F32) {
    if (w32 == p.f32()) return;
    check(cudaMemcpyAsync(p.f32(), w32, sizeof(float) * static_cast<size_t>(n),
                          cudaMemcpyDeviceToDevice, stream_),
          "store: copying an fp32 parameter");
    return;
  }
  store16_kernel<<<grid_for(n), kBlock, 0, stream_>>>(p.u16(), w32, n,
                                                      element::Store16::of(p.dtype, r, p.id, p.first));
  check_launch("store (store16_kernel)");
}

void CudaBackend::fill_normal(float* x, int64_t n, uint64_t seed, uint64_t stream, double stddev,
                              int64_t first) {
  if (n <= 0) return;
  fill_normal_kernel<<<grid_for(n), kBlock, 0, stream_>>>(x, n, seed, stream, stddev, first);
  check_launch("fill_normal_kernel");
}

}  // namespace lomo::cuda
