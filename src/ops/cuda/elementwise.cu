// The small element-wise ops on the GPU: fill, SwiGLU, the residual add, dropout and a linear
// layer's bias. One thread per element with a grid stride; the element rules are the CPU's
// (ops/element/), so add, dropout, bias_rows and bias_grad match it bit for bit and SwiGLU to
// the few ulp between expf and the CPU's vexp.
#include <cstdint>

#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/cuda_util.h"
#include "ops/element/dropout.h"
#include "ops/element/swiglu.h"

namespace lomo::cuda {

namespace {

// x(n) ← value
__global__ void fill_kernel(float* x, float value, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    x[i] = value;
  }
}

// m(n) = silu(g)·u
__global__ void swiglu_forward_kernel(float* m, const float* g, const float* u, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float s = sigmoid_from_exp(expf(-g[i]));
    m[i] = swiglu_value(g[i], u[i], s);
  }
}

// dg(n), du(n) ← dm(n), g(n), u(n); dg and du may alias g and u: each thread reads its element
// of g and u before writing it.
__global__ void swiglu_backward_kernel(float* dg, float* du, const float* dm, const float* g,
                                       const float* u, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float gi = g[i], ui = u[i], dmi = dm[i];
    const float s = sigmoid_from_exp(expf(-gi));
    dg[i] = swiglu_dg(dmi, gi, ui, s);
    du[i] = swiglu_du(dmi, gi, s);
  }
}

// y(n) += x(n)
__global__ void add_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    y[i] = __fadd_rn(y[i], x[i]);
  }
}

// y(n) = keep ⊙ a·x (Accumulate::No) or y(n) += keep ⊙ a·x (Accumulate::Yes), a = alpha/(1 − p).
enum class Accumulate { No, Yes };
template <Accumulate kAcc>
__global__ void dropout_kernel(float* y, const float* x, int64_t n, float p, float a,
                               uint64_t key) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float v = dropout_value(x[i], a, key, i, p);
    if constexpr (kAcc == Accumulate::Yes) {
      y[i] = __fadd_rn(y[i], v);
    } else {
      y[i] = v;
    }
  }
}

// Y(N, out): every row ← b(out)
__global__ void bias_rows_kernel(float* Y, const float* b, int64_t N, int64_t out) {
  const int64_t total = N * out;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    Y[i] = b[i % out];
  }
}

// db(out) ← Σ_n dY(N, out): one thread per column summing its N rows in order in fp64, the
// CPU's order, so the result is the CPU's bit for bit (and needs no atomics). Neighbouring
// threads read neighbouring columns, so each row's read is coalesced.
__global__ void bias_grad_kernel(float* db, const float* dY, int64_t N, int64_t out) {
  for (int64_t o = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; o < out;
       o += int64_t{gridDim.x} * blockDim.x) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) s += dY[n * out + o];
    db[o] = static_cast<float>(s);
  }
}

}  // namespace

void CudaBackend::fill(float* x, float value, int64_t n) {
  if (n <= 0) return;
  fill_kernel<<<grid_for(n), kBlock, 0, stream_>>>(x, value, n);
  check_launch("fill_kernel");
}

void CudaBackend::swiglu_forward(float* m, const float* g, const float* u, int64_t n) {
  if (n <= 0) return;
  swiglu_forward_kernel<<<grid_for(n), kBlock, 0, stream_>>>(m, g, u, n);
  check_launch("swiglu_forward_kernel");
}

void CudaBackend::swiglu_backward(float* dg, float* du, const float* dm, const float* g,
                                  const float* u, int64_t n) {
  if (n <= 0) return;
  swiglu_backward_kernel<<<grid_for(n), kBlock, 0, stream_>>>(dg, du, dm, g, u, n);
  check_launch("swiglu_backward_kernel");
}

void CudaBackend::add(float* y, const float* x, int64_t n) {
  if (n <= 0) return;
  add_kernel<<<grid_for(n), kBlock, 0, stream_>>>(y, x, n);
  check_launch("add_kernel");
}

void CudaBackend::dropout(float* y, const float* x, int64_t n, float p, uint64_t key) {
  if (n <= 0) return;
  dropout_kernel<Accumulate::No>
      <<<grid_for(n), kBlock, 0, stream_>>>(y, x, n, p, dropout_scale(p, 1.0f), key);
  check_launch("dropout_kernel");
}

void CudaBackend::dropout_add(float* y, const float* x, int64_t n, float p, float alpha,
                              uint64_t key) {
  if (n <= 0) return;
  dropout_kernel<Accumulate::Yes>
      <<<grid_for(n), kBlock, 0, stream_>>>(y, x, n, p, dropout_scale(p, alpha), key);
  check_launch("dropout_kernel");
}

void CudaBackend::bias_rows(float* Y, const float* b, int64_t N, int64_t out) {
  if (N <= 0 || out <= 0) return;
  bias_rows_kernel<<<grid_for(N * out), kBlock, 0, stream_>>>(Y, b, N, out);
  check_launch("bias_rows_kernel");
}

void CudaBackend::bias_grad(float* db, const float* dY, int64_t N, int64_t out) {
  if (out <= 0) return;
  bias_grad_kernel<<<grid_for(out), kBlock, 0, stream_>>>(db, dY, N, out);
  check_launch("bias_grad_kernel");
}

}  // namespace lomo::cuda
