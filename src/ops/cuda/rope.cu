// Rotary position embedding on the GPU, in place (ops/rope.h has the convention; the pair
// rotation is the CPU's, ops/element/rope.h, so results match it bit for bit). One thread per
// pair (x_i, x_{i+h}), pairs strided by the grid.
//
// The RopeTable is a host struct built once per model (backend.h): its cos and sin are uploaded
// on first use and cached, keyed by (backend, the table's serial, GPU). make_rope_table gives
// every table it builds a serial of its own (ops/rope.h), so a table built later at a freed
// table's address is never served the old angles; a table without a serial (filled by hand) is
// uploaded again on every use. The cache is a file-static map because CudaBackend has no member
// for it; its device copies are never freed (one per model and backend, living as long as the
// process).
#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>

#include "core/error.h"
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/cuda_util.h"
#include "ops/element/rope.h"

namespace lomo::cuda {

namespace {

// The device copy of one RopeTable: cos and sin, (max_pos, half) each, in one allocation.
struct DeviceRopeTable {
  float* cos = nullptr;  // (max_pos, half)
  float* sin = nullptr;  // (max_pos, half)
};

using RopeKey = std::tuple<const void*, uint64_t, int>;  // backend, table serial, GPU

std::mutex rope_cache_mutex;
std::map<RopeKey, DeviceRopeTable> rope_cache;

// The table's device cos and sin, uploaded on `stream` on first use.
std::pair<const float*, const float*> device_table(const CudaBackend* backend,
                                                   const RopeTable& table, cudaStream_t stream) {
  int device = 0;
  check(cudaGetDevice(&device), "rope: reading the current GPU");
  const size_t elems = static_cast<size_t>(table.max_pos * table.half);
  if (table.cos.size() != elems || table.sin.size() != elems) {
    throw Error("rope: the table's cos/sin hold " + std::to_string(table.cos.size()) + "/" +
                std::to_string(table.sin.size()) +
                " values, expected max_pos·half = " + std::to_string(elems));
  }
  if (elems == 0) throw Error("rope: the table is empty (max_pos or half is 0)");
  // Serial 0 (a table filled by hand) has one slot per backend and GPU, freed and filled again
  // on every use.
  const RopeKey key{backend, table.serial, device};
  std::lock_guard<std::mutex> lock(rope_cache_mutex);
  auto it = rope_cache.find(key);
  if (it != rope_cache.end() && table.serial != 0) return {it->second.cos, it->second.sin};
  if (it != rope_cache.end()) {  // serial 0: the slot's old table goes
    check(cudaStreamSynchronize(stream), "rope: waiting for the kernels reading the old table");
    cudaFree(it->second.cos);
    rope_cache.erase(it);
  }
  float* dev = nullptr;
  check(cudaMalloc(&dev, 2 * elems * sizeof(float)), "rope: allocating the table on the GPU");
  it = rope_cache.emplace(key, DeviceRopeTable{dev, dev + elems}).first;
  // The host vectors may change once this returns, hence the wait (once per table).
  check(cudaMemcpyAsync(it->second.cos, table.cos.data(), elems * sizeof(float),
                        cudaMemcpyHostToDevice, stream),
        "rope: uploading the cos table");
  check(cudaMemcpyAsync(it->second.sin, table.sin.data(), elems * sizeof(float),
                        cudaMemcpyHostToDevice, stream),
        "rope: uploading the sin table");
  check(cudaStreamSynchronize(stream), "rope: uploading the table");
  return {it->second.cos, it->second.sin};
}

// x(B, T, n_heads, 2·half): each pair (x_i, x_{i+half}) of token t rotated by the angle of
// position pos0 + t, with sine·sign (−1: the transpose, backward's rotation).
__global__ void rope_kernel(float* x, const float* cos_table, const float* sin_table, int64_t pos0,
                            int64_t T, int64_t n_heads, int64_t half, int64_t pairs, float sign) {
  for (int64_t k = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; k < pairs;
       k += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = k % half;    // pair within the head
    const int64_t row = k / half;  // (b·T + t)·n_heads + head
    const int64_t t = (row / n_heads) % T;
    const int64_t a_at = row * 2 * half + i;
    const int64_t angle = (pos0 + t) * half + i;
    const float a = x[a_at], b = x[a_at + half];
    const float c = cos_table[angle], s = sign * sin_table[angle];
    x[a_at] = rope_first(a, b, c, s);
    x[a_at + half] = rope_second(a, b, c, s);
  }
}

void rotate(CudaBackend& backend, float* x, const RopeTable& table, int64_t pos0, int64_t B,
            int64_t T, int64_t n_heads, int64_t head_dim, float sign) {
  if (pos0 < 0 || pos0 + T > table.max_pos || head_dim != 2 * table.half) {
    throw Error("rope: positions " + std::to_string(pos0) + " … " + std::to_string(pos0 + T) +
                " and head_dim " + std::to_string(head_dim) + " do not fit the table (max_pos " +
                std::to_string(table.max_pos) + ", head_dim " + std::to_string(2 * table.half) +
                ")");
  }
  const int64_t pairs = B * T * n_heads * table.half;
  if (pairs <= 0) return;
  const auto [cos_dev, sin_dev] = device_table(&backend, table, backend.stream());
  rope_kernel<<<grid_for(pairs), kBlock, 0, backend.stream()>>>(x, cos_dev, sin_dev, pos0, T,
                                                                n_heads, table.half, pairs, sign);
  check_launch("rope_kernel");
}

}  // namespace

void CudaBackend::rope_forward(float* x, const RopeTable& table, int64_t B, int64_t T,
                               int64_t n_heads, int64_t head_dim) {
  rotate(*this, x, table, 0, B, T, n_heads, head_dim, 1.0f);
}

void CudaBackend::rope_backward(float* dx, const RopeTable& table, int64_t B, int64_t T,
                                int64_t n_heads, int64_t head_dim) {
  rotate(*this, dx, table, 0, B, T, n_heads, head_dim, -1.0f);
}

void CudaBackend::rope_forward_at(float* x, const RopeTable& table, int64_t pos0, int64_t B,
                                  int64_t T, int64_t n_heads, int64_t head_dim) {
  rotate(*this, x, table, pos0, B, T, n_heads, head_dim, 1.0f);
}

}  // namespace lomo::cuda
