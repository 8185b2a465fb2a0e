// What the attention kernels (ops/cuda/attention.cu) share: the launch shape, warp reductions and
// the copies of row tiles into shared memory. A warp computes 32 scores at once, one key (or
// query) per lane, each lane reading its own row of a tile in shared memory; then it turns to
// the output, one head dimension per lane: lane l owns dimensions l, l + 32, …, l + 32·(E − 1),
// so per-thread accumulators are arrays of E indexed by compile-time constants only (no local
// memory), E = ⌈head_dim / 32⌉ a template parameter.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace lomo::cuda::attn {

inline constexpr int kWarpSize = 32;
inline constexpr int kWarps = 4;                          // per block
inline constexpr int kThreads = kWarps * kWarpSize;       // 128
inline constexpr int kRowsPerWarp = 4;                    // rows one warp owns in a block
inline constexpr int kBlockRows = kWarps * kRowsPerWarp;  // 16 rows (queries or keys) per block
inline constexpr int kTile = kWarpSize;                   // rows of a streamed tile: one per lane
inline constexpr int kMaxE = 8;                           // head_dim ≤ 256
inline constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = kWarpSize / 2; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(kFull, x, o));
  return x;
}

__device__ __forceinline__ double warp_sum(double x) {
#pragma unroll
  for (int o = kWarpSize / 2; o > 0; o /= 2) x += __shfl_xor_sync(kFull, x, o);
  return x;
}

// dst(n_rows, ld) ← rows r < n of src (row r at src + r·src_ld, hd elements), zero elsewhere
// (the first hd columns of rows [n, n_rows)); the whole block takes part.
__device__ __forceinline__ void load_rows(float* dst, int ld, const float* src, int64_t src_ld,
                                          int n, int n_rows, int hd) {
  for (int idx = static_cast<int>(threadIdx.x); idx < n_rows * hd; idx += kThreads) {
    const int r = idx / hd, c = idx % hd;
    dst[r * ld + c] = r < n ? src[r * src_ld + c] : 0.0f;
  }
}

}  // namespace lomo::cuda::attn
