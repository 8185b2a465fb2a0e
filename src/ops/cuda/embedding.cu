// Token embedding on the GPU (ops/cpu/embedding.h has the contracts). The lookup and LOMO's
// zero-buffer update of the table match the CPU bit for bit (the same sums in the same order,
// the same element rules: ops/element/update.h, ops/element/param.h); the backward scatter adds
// with atomics, so with repeated ids it matches the CPU to rounding (backend.h allows it).
//
// embedding_update without sorting (CUB's radix sort needs temporary storage the interface does
// not give): order(N) becomes a linked list of each row's tokens in token order, and each row's
// first token leads its row's update, which walks the list. Costs: the links are O(N²) id
// comparisons at worst (N = 4096: 17M, a few µs of a GPU's time) and the decay of rows no token
// names, when keep ≠ 1, compares every row against every id: O(V·N) (V = 128k, N = 4096:
// 5·10⁸ comparisons from shared memory, well under a millisecond on an H200, once a step).
#include <algorithm>
#include <cstdint>

#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/cuda_util.h"
#include "ops/element/param.h"
#include "ops/element/update.h"

namespace lomo::cuda {

namespace {

// out(N, d) = table[ids[n]] in fp32; ids[n] < 0 gives a zero row.
__global__ void embedding_forward_kernel(float* out, const int32_t* ids, ParamView table, int64_t N,
                                         int64_t d) {
  const int64_t total = N * d;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int32_t id = ids[i / d];
    out[i] = id < 0 ? 0.0f : param_load(table, static_cast<int64_t>(id) * d + i % d);
  }
}

// dtable(V, d) += dout(N, d) at rows ids(N); padding carries nothing. Atomic: ids may repeat.
__global__ void embedding_backward_kernel(float* dtable, const float* dout, const int32_t* ids,
                                          int64_t N, int64_t d) {
  const int64_t total = N * d;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int32_t id = ids[i / d];
    if (id >= 0) atomicAdd(dtable + static_cast<int64_t>(id) * d + i % d, dout[i]);
  }
}

// The encoding of order(N) while embedding_update runs: for token n, the next token m > n with
// the same id (N: none), stored as next for a follower and −(next + 1) for its row's first token
// (the leader). Padding tokens are followers that nothing follows.
__device__ __forceinline__ int32_t next_of(int32_t link) {
  return link < 0 ? -link - 1 : link;
}

__global__ void embedding_links_kernel(int32_t* order, const int32_t* ids, int64_t N) {
  for (int64_t n = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; n < N;
       n += int64_t{gridDim.x} * blockDim.x) {
    const int32_t v = ids[n];
    if (v < 0) {
      order[n] = static_cast<int32_t>(N);
      continue;
    }
    int64_t next = n + 1;
    while (next < N && ids[next] != v) ++next;
    bool leader = true;
    for (int64_t m = 0; m < n && leader; ++m) leader = ids[m] != v;
    order[n] = leader ? static_cast<int32_t>(-next - 1) : static_cast<int32_t>(next);
  }
}

// Rows with tokens: one block per leader token n; its threads stride over the row's d columns,
// each summing the column of its tokens' dout in token order from 0 in fp32 (the CPU's sum),
// then writing keep·p − step·g once, from the held fp32 values where the row is held.
__global__ void embedding_update_rows_kernel(ParamView table, const float* dout, const int32_t* ids,
                                             const int32_t* order, int64_t N, SgdStep s,
                                             HeldRows held) {
  const int64_t d = table.cols;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const int32_t link = order[n];
    if (link >= 0) continue;  // a follower or padding: its leader's block adds its row
    const int32_t v = ids[n];
    const float* base = nullptr;  // held.values row (d), or none
    if (held.n > 0) {
      const int32_t* h = held.rows;
      int64_t lo = 0, hi = held.n;  // lower_bound of v in rows(n)
      while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (h[mid] < v) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      if (lo < held.n && h[lo] == v) base = held.values + lo * d;
    }
    const int64_t row = static_cast<int64_t>(v) * d;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      float g = 0.0f;
      for (int64_t m = n; m < N; m = next_of(order[m])) g += dout[m * d + j];
      const float p = base ? base[j] : param_load(table, row + j);
      param_store(table, row + j, element::sgd(p, g, s.keep, s.step), s.rounding);
    }
  }
}

// Rows no token names get keep·p (their gradient is zero), as the CPU: p·keep − step·0. Each
// block takes kBlock rows at a time: every thread compares its row with all ids (read in tiles
// through shared memory), then the block writes the unnamed rows' elements, coalesced.
__global__ void __launch_bounds__(kBlock)
    embedding_decay_kernel(ParamView table, const int32_t* ids, int64_t N, SgdStep s) {
  __shared__ int32_t tile[kBlock];
  __shared__ bool named[kBlock];
  const int64_t V = table.rows, d = table.cols;
  for (int64_t v0 = blockIdx.x * int64_t{kBlock}; v0 < V; v0 += int64_t{gridDim.x} * kBlock) {
    const int64_t v = v0 + threadIdx.x;
    bool hit = false;
    for (int64_t m0 = 0; m0 < N; m0 += kBlock) {
      const int64_t m = m0 + threadIdx.x;
      tile[threadIdx.x] = m < N ? ids[m] : -1;
      __syncthreads();
      const int64_t len = N - m0 < kBlock ? N - m0 : int64_t{kBlock};
      for (int64_t k = 0; k < len; ++k) hit = hit || tile[k] == v;
      __syncthreads();
    }
    named[threadIdx.x] = hit;
    __syncthreads();
    const int64_t end = (V < v0 + kBlock ? V : v0 + kBlock) * d;
    for (int64_t i = v0 * d + threadIdx.x; i < end; i += kBlock) {
      if (named[i / d - v0]) continue;  // embedding_update_rows_kernel's
      param_store(table, i, element::sgd(param_load(table, i), 0.0f, s.keep, s.step), s.rounding);
    }
    __syncthreads();  // named is reused by the block's next rows
  }
}

}  // namespace

void CudaBackend::embedding_forward(float* out, const int32_t* ids, ParamView table, int64_t N) {
  const int64_t d = table.cols;
  if (N <= 0 || d <= 0) return;
  embedding_forward_kernel<<<grid_for(N * d), kBlock, 0, stream_>>>(out, ids, table, N, d);
  check_launch("embedding_forward_kernel");
}

void CudaBackend::embedding_backward(float* dtable, const float* dout, const int32_t* ids,
                                     int64_t N, int64_t d) {
  if (N <= 0 || d <= 0) return;
  embedding_backward_kernel<<<grid_for(N * d), kBlock, 0, stream_>>>(dtable, dout, ids, N, d);
  check_launch("embedding_backward_kernel");
}

void CudaBackend::embedding_update(ParamView table, const float* dout, const int32_t* ids,
                                   int64_t N, int32_t* order, const SgdStep& s,
                                   const HeldRows& held) {
  const int64_t V = table.rows, d = table.cols;
  if (V <= 0 || d <= 0) return;
  // The decay pass must see which rows tokens name, but not their new values: it runs after
  // the rows' update and skips the named rows.
  if (N > 0) {
    embedding_links_kernel<<<grid_for(N), kBlock, 0, stream_>>>(order, ids, N);
    check_launch("embedding_links_kernel");
    const auto row_blocks = static_cast<unsigned>(std::clamp<int64_t>(N, 1, int64_t{1} << 16));
    embedding_update_rows_kernel<<<row_blocks, kBlock, 0, stream_>>>(table, dout, ids, order, N, s,
                                                                     held);
    check_launch("embedding_update_rows_kernel");
  }
  if (s.keep == 1.0f) return;  // rows without tokens are left alone
  embedding_decay_kernel<<<grid_for(V), kBlock, 0, stream_>>>(table, ids, N, s);
  check_launch("embedding_decay_kernel");
}

}  // namespace lomo::cuda
