// The fused LM head and cross-entropy on the GPU: the schedules of ops/lm_head.h, line for line
// as the CPU's (ops/cpu/lm_head.cpp). The tile loop runs on the host; every product goes through
// matmul (cuBLASLt) on views into W, xn and the tile, a 16-bit W with fp32 products converted
// block by block into w_block by to_f32; the per-row work runs in the kernels below:
//   pass 1   accumulate_lse_kernel (one block per row: the tile's max, Σ exp in fp64, the online
//            logsumexp in row_stats (N, 2) double) and finish_lse_kernel (lse, nll);
//   pass 2   logits_to_grad_kernel (element-wise: dlogits = scale·(exp(logits − lse) − onehot));
//   one pass row_loss_and_grad_kernel (one block per row of V logits, in place);
//   update   store_rows_kernel (a 16-bit W_v written back with the update's rounding at W's own
//            element indices: store16, as the CPU's store_rounded) and keep_held_rows_kernel.
// Σ nll is reduced on the device in fp64 by one block (a fixed order) and read back once; the
// two-pass schedule reads it after pass 1, so that a non-finite loss returns before pass 2 with
// W untouched (design §2 rule 8).
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/rounding.h"
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/cuda_util.h"

namespace lomo::cuda {

namespace {

constexpr int kRowThreads = 256;  // threads of the one-block-per-row kernels
constexpr int kRowWarps = kRowThreads / 32;

// op over the block's x, the same value in every thread; `shared` holds kRowWarps values. The
// warps' partial results are combined in warp order by every thread: a fixed order.
template <class T, class Op>
__device__ T block_reduce(T x, Op op, T* shared) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) x = op(x, __shfl_xor_sync(0xffffffffu, x, o));
  __syncthreads();  // an earlier reduction's readers are done with `shared`
  if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = x;
  __syncthreads();
  x = shared[0];
#pragma unroll
  for (int w = 1; w < kRowWarps; ++w) x = op(x, shared[w]);
  return x;
}

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  __device__ double operator()(double a, double b) const { return a + b; }
};

// row_stats(N, 2) ← (−∞, 0), nll(N) ← 0.
__global__ void init_rows_kernel(double* row_stats, float* nll, int64_t N) {
  for (int64_t r = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; r < N;
       r += int64_t{gridDim.x} * blockDim.x) {
    row_stats[2 * r] = -INFINITY;
    row_stats[2 * r + 1] = 0;
    nll[r] = 0;
  }
}

// Pass 1 on one tile, logits(C, n) of rows [r0, r0 + C), vocabulary [v0, v0 + n); block i takes
// row r0 + i: its running max m and Σ exp(logit − m), and the target's logit when it falls in
// the tile (kept in nll for now).
__global__ void __launch_bounds__(kRowThreads)
    accumulate_lse_kernel(const float* tile, int64_t n, int64_t r0, int64_t v0,
                          const int32_t* targets, double* row_stats, float* nll) {
  __shared__ float fshared[kRowWarps];
  __shared__ double dshared[kRowWarps];
  const int64_t i = blockIdx.x, r = r0 + i;
  const int32_t t = targets[r];
  if (t < 0) return;                // block-uniform
  const float* row = tile + i * n;  // (n)
  float bm = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += kRowThreads) bm = fmaxf(bm, row[j]);
  bm = block_reduce(bm, MaxOp{}, fshared);
  double m = row_stats[2 * r], s = row_stats[2 * r + 1];
  if (bm > m) {
    s *= exp(m - static_cast<double>(bm));
    m = bm;
  }
  const auto mf = static_cast<float>(m);
  double sum = 0;
  for (int64_t j = threadIdx.x; j < n; j += kRowThreads) sum += expf(row[j] - mf);
  sum = block_reduce(sum, SumOp{}, dshared);
  if (threadIdx.x == 0) {
    row_stats[2 * r] = m;
    row_stats[2 * r + 1] = s + sum;
    if (t >= v0 && t < v0 + n) nll[r] = row[t - v0];
  }
}

// After pass 1: row_stats[2r] ← lse = m + log Σ, nll[r] ← lse − the target's logit.
__global__ void finish_lse_kernel(double* row_stats, float* nll, const int32_t* targets,
                                  int64_t N) {
  for (int64_t r = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; r < N;
       r += int64_t{gridDim.x} * blockDim.x) {
    if (targets[r] < 0) continue;
    const double lse = row_stats[2 * r] + log(row_stats[2 * r + 1]);
    row_stats[2 * r] = lse;
    nll[r] = static_cast<float>(lse - nll[r]);
  }
}

// Pass 2 on one tile (C, n), in place: logits → dlogits = scale · (exp(logits − lse) − onehot);
// rows without a target get 0.
__global__ void logits_to_grad_kernel(float* tile, int64_t C, int64_t n, int64_t r0, int64_t v0,
                                      const int32_t* targets, const double* row_stats,
                                      float scale) {
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < C * n;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = r0 + idx / n, j = idx % n;
    const int32_t t = targets[r];
    if (t < 0) {
      tile[idx] = 0.0f;
      continue;
    }
    float g = scale * expf(static_cast<float>(tile[idx] - row_stats[2 * r]));
    if (v0 + j == t) g -= scale;
    tile[idx] = g;
  }
}

// One pass on a tile of C rows × V logits, block i on row r0 + i, in place: logits → dlogits =
// scale · (softmax(logits) − onehot), nll = lse(logits) − logits[t]; rows without a target get
// 0 and nll 0.
__global__ void __launch_bounds__(kRowThreads)
    row_loss_and_grad_kernel(float* tile, int64_t V, int64_t r0, const int32_t* targets, float* nll,
                             float scale) {
  __shared__ float fshared[kRowWarps];
  __shared__ double dshared[kRowWarps];
  const int64_t i = blockIdx.x, r = r0 + i;
  const int32_t t = targets[r];
  float* row = tile + i * V;  // (V)
  if (t < 0) {
    for (int64_t j = threadIdx.x; j < V; j += kRowThreads) row[j] = 0.0f;
    if (threadIdx.x == 0) nll[r] = 0.0f;
    return;
  }
  const float target_logit = row[t];  // read by all before block_reduce's barrier; written after
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += kRowThreads) mx = fmaxf(mx, row[j]);
  mx = block_reduce(mx, MaxOp{}, fshared);
  double s = 0;
  for (int64_t j = threadIdx.x; j < V; j += kRowThreads) {
    const float e = expf(row[j] - mx);
    row[j] = e;
    s += static_cast<double>(e);
  }
  s = block_reduce(s, SumOp{}, dshared);
  const auto k = static_cast<float>(static_cast<double>(scale) / s);
  for (int64_t j = threadIdx.x; j < V; j += kRowThreads) {  // each thread its own elements
    float g = row[j] * k;
    if (j == t) g -= scale;
    row[j] = g;
  }
  if (threadIdx.x == 0) {
    nll[r] = static_cast<float>(static_cast<double>(mx) + log(s) - target_logit);
  }
}

// *out ← Σ nll[r] over rows with a target, in fp64, by one block in a fixed order.
__global__ void __launch_bounds__(kRowThreads)
    sum_nll_kernel(double* out, const float* nll, const int32_t* targets, int64_t N) {
  __shared__ double dshared[kRowWarps];
  double s = 0;
  for (int64_t r = threadIdx.x; r < N; r += kRowThreads) {
    if (targets[r] >= 0) s += static_cast<double>(nll[r]);
  }
  s = block_reduce(s, SumOp{}, dshared);
  if (threadIdx.x == 0) *out = s;
}

// Elements [begin, begin + n) of a 16-bit W ← w32(n), rounded as if the whole tensor were
// stored (the stochastic stream keyed by the element's index in W).
__global__ void store_rows_kernel(uint16_t* w16, const float* w32, int64_t begin, int64_t n,
                                  StorageDtype dtype, RoundingMode rounding, int id) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    w16[begin + i] = store16(dtype, w32[i], rounding, id, begin + i);
  }
}

// The held rows among W_v's (rows [v0, v0 + n)): values(held, d) ← their updated fp32 values in
// w32(n, d) (ops/tensor.h, HeldRows).
__global__ void keep_held_rows_kernel(float* values, const int32_t* rows, int64_t n_held,
                                      const float* w32, int64_t v0, int64_t n, int64_t d) {
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < n_held * d;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t h = idx / d, c = idx % d;
    const int64_t row = rows[h];
    if (row >= v0 && row < v0 + n) values[idx] = w32[(row - v0) * d + c];
  }
}

// One call of lm_head_loss: the shapes, and the host side of each step.
struct Head {
  CudaBackend& be;
  ParamView W;
  const LmHeadIo& io;
  double* sum_dev;  // one double of device scratch
  int64_t V = W.rows, d = W.cols, N = io.N;
  int64_t R = io.tiles.rows, Vb = io.tiles.cols;
  bool bf16 = io.xn16 != nullptr;

  cudaStream_t stream() const { return be.stream(); }

  // C(M, Nc) = alpha·op(A)·op(B) + beta·C (ops/tensor.h).
  void product(Trans ta, Trans tb, int64_t M, int64_t Nc, int64_t K, float alpha, MatRef A,
               MatRef B, float beta, float* C, int64_t ldc) {
    be.matmul(Matmul{ta, tb, M, Nc, K, alpha, A, B, beta, C, ldc,
                     bf16 ? Precision::BF16 : Precision::F32});
  }
  // W rows [v0, v0 + n) as fp32 (n, d): W's own storage when fp32, else converted into w_block.
  const float* w_rows(int64_t v0, int64_t n) {
    if (W.dtype == StorageDtype::F32) return W.f32() + v0 * d;
    be.to_f32(io.w_block, W, v0 * d, n * d);
    return io.w_block;
  }
  // Operands: rows of xn from r0, rows of W from v0 (as stored for bf16 products, else the
  // fp32 view `w` of W_v).
  MatRef xn_at(int64_t r0) const {
    return bf16 ? MatRef::bf16(io.xn16 + r0 * d, d) : MatRef::f32(io.xn + r0 * d, d);
  }
  MatRef w_at(const float* w, int64_t v0) const {
    return bf16 ? MatRef::bf16(W.u16() + v0 * d, d) : MatRef::f32(w, d);
  }
  // The dlogits operand at column v0 of a tile with row stride ld: the tile itself, or its bf16
  // copy.
  MatRef dlogits_at(int64_t v0, int64_t ld) const {
    return bf16 ? MatRef::bf16(io.tile16 + v0, ld) : MatRef::f32(io.tile + v0, ld);
  }

  // Σ nll over the rows with a target, read back (this synchronises).
  double total_nll() {
    sum_nll_kernel<<<1, kRowThreads, 0, stream()>>>(sum_dev, io.nll, io.targets, N);
    check_launch("lm_head_loss (Σ nll)");
    double sum = 0;
    be.copy_to_host(&sum, sum_dev, sizeof sum);
    return sum;
  }

  // The held rows of W_v (rows [v0, v0 + n)) from its updated fp32 values w32(n, d), then a
  // 16-bit W_v written back once with the update's rounding.
  void write_back(const float* w32, int64_t v0, int64_t n, const RoundingMode& rounding) {
    if (io.held.n > 0) {
      keep_held_rows_kernel<<<grid_for(io.held.n * d), kBlock, 0, stream()>>>(
          io.held.values, io.held.rows, io.held.n, w32, v0, n, d);
      check_launch("lm_head_loss (held rows)");
    }
    if (W.dtype == StorageDtype::F32) return;  // updated in place by the product
    store_rows_kernel<<<grid_for(n * d), kBlock, 0, stream()>>>(W.u16(), w32, v0 * d, n * d,
                                                                W.dtype, rounding, W.id);
    check_launch("lm_head_loss (write-back)");
  }

  double one_pass();
  double two_passes();
};

// One pass (training): per tile of C rows × all V entries, the loss and the gradients.
double Head::one_pass() {
  // A 16-bit W with fp32 products is converted `cols` rows at a time into w_block (twice per
  // row tile: for the logits and for dxn); otherwise each loop over W blocks runs once, over all
  // V, on W as stored.
  const bool blocked = !bf16 && W.dtype != StorageDtype::F32;
  const int64_t wb = blocked ? Vb : V;
  for (int64_t r0 = 0; r0 < N; r0 += R) {
    const int64_t C = std::min(R, N - r0);
    float* tile = io.tile;  // (C, V): logits, then dlogits
    // logits(C, V) = xn_r(C, d) · Wᵀ(d, V)
    for (int64_t v0 = 0; v0 < V; v0 += wb) {
      const int64_t n = std::min(wb, V - v0);
      const float* w = bf16 ? nullptr : w_rows(v0, n);
      product(Trans::No, Trans::Yes, C, n, d, 1.0f, xn_at(r0), w_at(w, v0), 0.0f, tile + v0, V);
    }
    // In the forward pass this was: nll = lse(logits) − logits[target]. In place:
    // dlogits = scale · (softmax(logits) − onehot); rows without a target get 0.
    row_loss_and_grad_kernel<<<static_cast<unsigned>(C), kRowThreads, 0, stream()>>>(
        tile, V, r0, io.targets, io.nll, io.grad_scale);
    check_launch("lm_head_loss (one-pass rows)");
    if (bf16) be.to_bf16(io.tile16, tile, C * V);
    for (int64_t v0 = 0; v0 < V; v0 += wb) {
      const int64_t n = std::min(wb, V - v0);
      const float* w = bf16 ? nullptr : w_rows(v0, n);
      // dxn_r(C, d) (+)= dlogits_v(C, n) · W_v(n, d);  dW_v(n, d) (+)= dlogits_vᵀ(n, C) · xn_r(C,
      // d)
      product(Trans::No, Trans::No, C, d, n, 1.0f, dlogits_at(v0, V), w_at(w, v0),
              v0 > 0 ? 1.0f : 0.0f, io.dxn + r0 * d, d);
      if (io.dW) {
        product(Trans::Yes, Trans::No, n, d, C, 1.0f, dlogits_at(v0, V), xn_at(r0),
                r0 > 0 ? 1.0f : 0.0f, io.dW + v0 * d, d);
      }
    }
  }
  return total_nll();
}

double Head::two_passes() {
  const bool train = io.dxn != nullptr;
  if (io.logits_out) io.logits_out->resize(static_cast<size_t>(N * V));
  init_rows_kernel<<<grid_for(N), kBlock, 0, stream()>>>(io.row_stats, io.nll, N);
  check_launch("lm_head_loss (init)");
  // Pass 1: the loss. tile(C, n) = xn_r(C, d) · W_v(n, d)ᵀ
  std::vector<float> host_tile;
  for (int64_t v0 = 0; v0 < V; v0 += Vb) {
    const int64_t n = std::min(Vb, V - v0);
    const float* w = bf16 ? nullptr : w_rows(v0, n);  // (n, d)
    for (int64_t r0 = 0; r0 < N; r0 += R) {
      const int64_t C = std::min(R, N - r0);
      product(Trans::No, Trans::Yes, C, n, d, 1.0f, xn_at(r0), w_at(w, v0), 0.0f, io.tile, n);
      if (io.logits_out) {
        host_tile.resize(static_cast<size_t>(C * n));
        be.copy_to_host(host_tile.data(), io.tile, sizeof(float) * host_tile.size());
        for (int64_t i = 0; i < C; ++i) {
          std::copy(host_tile.begin() + i * n, host_tile.begin() + (i + 1) * n,
                    io.logits_out->begin() + (r0 + i) * V + v0);
        }
      }
      accumulate_lse_kernel<<<static_cast<unsigned>(C), kRowThreads, 0, stream()>>>(
          io.tile, n, r0, v0, io.targets, io.row_stats, io.nll);
      check_launch("lm_head_loss (logsumexp)");
    }
  }
  finish_lse_kernel<<<grid_for(N), kBlock, 0, stream()>>>(io.row_stats, io.nll, io.targets, N);
  check_launch("lm_head_loss (nll)");
  const double sum = total_nll();
  if (!train) return sum;
  const SgdStep* u = io.update;
  LOMO_ASSERT(!u || (io.dW == nullptr && R >= N),
              "the LM head's zero-buffer update needs every row in one tile and no dW");
  if (u && !std::isfinite(sum)) return sum;  // W untouched; the caller stops the run
  // Pass 2: the gradients. In the forward pass this was: nll = cross_entropy(logits),
  // logits = xn · Wᵀ.
  for (int64_t v0 = 0; v0 < V; v0 += Vb) {
    const int64_t n = std::min(Vb, V - v0);
    const float* w = bf16 ? nullptr : w_rows(v0, n);  // (n, d)
    for (int64_t r0 = 0; r0 < N; r0 += R) {
      const int64_t C = std::min(R, N - r0);
      float* tile = io.tile;  // (C, n): logits, then dlogits
      product(Trans::No, Trans::Yes, C, n, d, 1.0f, xn_at(r0), w_at(w, v0), 0.0f, tile, n);
      logits_to_grad_kernel<<<grid_for(C * n), kBlock, 0, stream()>>>(
          tile, C, n, r0, v0, io.targets, io.row_stats, io.grad_scale);
      check_launch("lm_head_loss (dlogits)");
      if (bf16) be.to_bf16(io.tile16, tile, C * n);
      // dxn_r(C, d) (+)= dlogits(C, n) · W_v(n, d)
      product(Trans::No, Trans::No, C, d, n, 1.0f, dlogits_at(0, n), w_at(w, v0),
              v0 > 0 ? 1.0f : 0.0f, io.dxn + r0 * d, d);
      if (io.dW) {
        // dW_v(n, d) (+)= dlogitsᵀ(n, C) · xn_r(C, d), unless the head is frozen
        product(Trans::Yes, Trans::No, n, d, C, 1.0f, dlogits_at(0, n), xn_at(r0),
                r0 > 0 ? 1.0f : 0.0f, io.dW + v0 * d, d);
      } else if (u) {
        // W_v (read for the last time above) ← keep·W_v − step·dlogitsᵀ·xn, in fp32: W's own
        // rows, or their fp32 copy in w_block (already there for fp32 products), written back
        // once.
        float* w32 = W.dtype == StorageDtype::F32 ? W.f32() + v0 * d : io.w_block;  // (n, d)
        if (bf16) be.to_f32(io.w_block, W, v0 * d, n * d);
        product(Trans::Yes, Trans::No, n, d, C, -u->step, dlogits_at(0, n), xn_at(r0), u->keep, w32,
                d);
        write_back(w32, v0, n, u->rounding);
      }
    }
  }
  return sum;
}

}  // namespace

double CudaBackend::lm_head_loss(ParamView W, const LmHeadIo& io) {
  const bool train = io.dxn != nullptr;
  const bool bf16 = io.xn16 != nullptr;
  LOMO_ASSERT(!bf16 || (W.dtype == StorageDtype::BF16 && io.tile16),
              "bf16 LM-head products need a bf16 head and a bf16 tile");
  LOMO_ASSERT(!io.tiles.one_pass || (train && !io.logits_out && !io.update),
              "the one-pass LM head is for training with a gradient buffer only");
  LOMO_ASSERT(io.tiles.rows >= 1 && io.tiles.cols >= 1, "lm_head_loss: empty tiles");
  Head head{*this, W, io, static_cast<double*>(reduce_dev_)};
  return io.tiles.one_pass ? head.one_pass() : head.two_passes();
}

}  // namespace lomo::cuda
