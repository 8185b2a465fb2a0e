// RMSNorm on the GPU (ops/cpu/rmsnorm.h has the layer and its derivation; the element rules are
// shared: ops/element/rmsnorm.h). Forward and backward give each row one block, whose threads
// stride over the row and reduce its Σx² or Σ w·dy·x in fp64 with a CUB block reduction (another
// order than the CPU's serial sum: rstd agrees to an ulp, dx to ~1e-6 relative). dw gives each
// column one thread summing its N rows in order in fp64, as the CPU: deterministic, no atomics.
#include <algorithm>
#include <cstdint>
#include <cub/block/block_reduce.cuh>

#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/cuda_util.h"
#include "ops/element/rmsnorm.h"

namespace lomo::cuda {

namespace {

constexpr int kRowBlock = 256;
using RowSum = cub::BlockReduce<double, kRowBlock>;

// One block per row, rows strided by the grid.
unsigned grid_for_rows(int64_t N) {
  return static_cast<unsigned>(std::clamp<int64_t>(N, 1, int64_t{1} << 16));
}

// y(N, d), rstd(N) ← x(N, d), w(d)
__global__ void __launch_bounds__(kRowBlock)
    rmsnorm_forward_kernel(float* y, float* rstd, const float* x, const float* w, int64_t N,
                           int64_t d, double eps) {
  __shared__ typename RowSum::TempStorage temp;
  __shared__ float row_r;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* xr = x + n * d;  // (d)
    double ss = 0;
    for (int64_t j = threadIdx.x; j < d; j += kRowBlock) ss += rmsnorm_square(xr[j]);
    ss = RowSum(temp).Sum(ss);  // the row's Σx², in thread 0
    if (threadIdx.x == 0) {
      row_r = rmsnorm_rstd<float>(ss, d, eps);
      rstd[n] = row_r;
    }
    __syncthreads();
    const float r = row_r;
    float* yr = y + n * d;  // (d)
    for (int64_t j = threadIdx.x; j < d; j += kRowBlock) yr[j] = rmsnorm_value(xr[j], r, w[j]);
    __syncthreads();  // temp and row_r are reused by the block's next row
  }
}

// y(N, d) ← x(N, d), rstd(N), w(d): forward's expression, so forward's bits.
__global__ void rmsnorm_apply_kernel(float* y, const float* x, const float* rstd, const float* w,
                                     int64_t N, int64_t d) {
  const int64_t total = N * d;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    y[i] = rmsnorm_value(x[i], rstd[i / d], w[i % d]);
  }
}

// dx(N, d) += r·w⊙dy − c·x with c = r³·(Σ_k w_k dy_k x_k)/d per row.
__global__ void __launch_bounds__(kRowBlock)
    rmsnorm_backward_dx_kernel(float* dx, const float* dy, const float* x, const float* rstd,
                               const float* w, int64_t N, int64_t d) {
  __shared__ typename RowSum::TempStorage temp;
  __shared__ double row_c;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* xr = x + n * d;    // (d)
    const float* dyr = dy + n * d;  // (d)
    const double r = rstd[n];
    double dot = 0;
    for (int64_t j = threadIdx.x; j < d; j += kRowBlock)
      dot += rmsnorm_dot_term(w[j], dyr[j], xr[j]);
    dot = RowSum(temp).Sum(dot);  // in thread 0
    if (threadIdx.x == 0) row_c = rmsnorm_dx_coef(r, dot, d);
    __syncthreads();
    const double c = row_c;
    float* dxr = dx + n * d;  // (d)
    for (int64_t j = threadIdx.x; j < d; j += kRowBlock)
      dxr[j] += rmsnorm_dx(r, w[j], dyr[j], c, xr[j]);
    __syncthreads();  // temp and row_c are reused by the block's next row
  }
}

// dw(d) ← Σ_n dy_nj·x_nj·r_n: one thread per column, rows in order, fp64.
__global__ void rmsnorm_backward_dw_kernel(float* dw, const float* dy, const float* x,
                                           const float* rstd, int64_t N, int64_t d) {
  for (int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; j < d;
       j += int64_t{gridDim.x} * blockDim.x) {
    double acc = 0;
    for (int64_t n = 0; n < N; ++n)
      acc += rmsnorm_dw_term(dy[n * d + j], x[n * d + j], double{rstd[n]});
    dw[j] = static_cast<float>(acc);
  }
}

}  // namespace

void CudaBackend::rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t N,
                                  int64_t d, double eps) {
  if (N <= 0) return;
  rmsnorm_forward_kernel<<<grid_for_rows(N), kRowBlock, 0, stream_>>>(y, rstd, x, w, N, d, eps);
  check_launch("rmsnorm_forward_kernel");
}

void CudaBackend::rmsnorm_apply(float* y, const float* x, const float* rstd, const float* w,
                                int64_t N, int64_t d) {
  if (N <= 0 || d <= 0) return;
  rmsnorm_apply_kernel<<<grid_for(N * d), kBlock, 0, stream_>>>(y, x, rstd, w, N, d);
  check_launch("rmsnorm_apply_kernel");
}

void CudaBackend::rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x,
                                   const float* rstd, const float* w, int64_t N, int64_t d) {
  if (d <= 0) return;
  if (N > 0) {
    rmsnorm_backward_dx_kernel<<<grid_for_rows(N), kRowBlock, 0, stream_>>>(dx, dy, x, rstd, w, N,
                                                                            d);
    check_launch("rmsnorm_backward_dx_kernel");
  }
  if (dw == nullptr) return;  // a frozen norm weight: only dx flows
  rmsnorm_backward_dw_kernel<<<grid_for(d), kBlock, 0, stream_>>>(dw, dy, x, rstd, N, d);
  check_launch("rmsnorm_backward_dw_kernel");
}

}  // namespace lomo::cuda
