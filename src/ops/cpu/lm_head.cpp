#include "ops/cpu/lm_head.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "ops/backend.h"
#include "ops/cpu/convert.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/gemm_bf16.h"
#include "ops/cpu/vexp.h"

namespace lomo {

namespace {

// W rows [v0, v0 + n) as fp32 (n, d): W's own storage when fp32, else converted into `scratch`.
const float* w_rows(ParamView W, int64_t v0, int64_t n, float* scratch) {
  const int64_t d = W.cols;
  if (W.dtype == StorageDtype::F32) return W.f32() + v0 * d;
  to_f32(scratch, W, v0 * d, n * d);
  return scratch;
}

// Largest of row[0, n), n ≥ 1.
float row_max(const float* row, int64_t n) {
  float m = row[0];
#pragma omp simd reduction(max : m)
  for (int64_t j = 1; j < n; ++j) m = row[j] > m ? row[j] : m;
  return m;
}

// Pass 1 on one tile: logits(C, n) of rows [r0, r0 + C), vocabulary [v0, v0 + n).
void accumulate_lse(const float* logits, int64_t C, int64_t n, int64_t r0, int64_t v0,
                    const LmHeadIo& io) {
#pragma omp parallel for
  for (int64_t i = 0; i < C; ++i) {
    const int64_t r = r0 + i;
    const int32_t t = io.targets[r];
    if (t < 0) continue;
    const float* row = logits + i * n;
    const float bm = row_max(row, n);
    double& m = io.row_stats[2 * r];
    double& s = io.row_stats[2 * r + 1];
    if (bm > m) {
      s *= std::exp(m - bm);
      m = bm;
    }
    const auto mf = static_cast<float>(m);
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; ++j) sum += vexp(row[j] - mf);
    s += sum;
    if (t >= v0 && t < v0 + n) io.nll[r] = row[t - v0];  // the target's logit, for now
  }
}

// One pass on one row of V logits with target t ≥ 0, in place: logits → dlogits =
// scale · (softmax(logits) − onehot). Returns the row's nll = lse(logits) − logits[t].
float row_loss_and_grad(float* row, int64_t V, int32_t t, float scale) {
  const float target_logit = row[t];
  const float mx = row_max(row, V);
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < V; ++j) {
    row[j] = vexp(row[j] - mx);
    s += static_cast<double>(row[j]);
  }
  const auto k = static_cast<float>(scale / s);
#pragma omp simd
  for (int64_t j = 0; j < V; ++j) row[j] *= k;
  row[t] -= scale;
  return static_cast<float>(static_cast<double>(mx) + std::log(s) - target_logit);
}

// Pass 2 on one tile, in place: logits → dlogits = scale · (exp(logits − lse) − onehot).
void logits_to_grad(float* tile, int64_t C, int64_t n, int64_t r0, int64_t v0, const LmHeadIo& io) {
#pragma omp parallel for
  for (int64_t i = 0; i < C; ++i) {
    const int64_t r = r0 + i;
    const int32_t t = io.targets[r];
    float* row = tile + i * n;
    if (t < 0) {
      std::fill(row, row + n, 0.0f);
      continue;
    }
    const double lse = io.row_stats[2 * r];
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      row[j] = io.grad_scale * vexp(static_cast<float>(row[j] - lse));
    }
    if (t >= v0 && t < v0 + n) row[t - v0] -= io.grad_scale;
  }
}

// tile(C, n) = xn_r(C, d) · W_v(n, d)ᵀ for rows [r0, r0 + C), vocabulary [v0, v0 + n); `w` is
// W_v in fp32 (unused with bf16 products).
void logits_tile(ParamView W, const float* w, int64_t r0, int64_t C, int64_t v0, int64_t n,
                 const LmHeadIo& io) {
  const int64_t d = W.cols;
  if (io.xn16) {
    gemm_bf16(Trans::No, Trans::Yes, C, n, d, 1.0f, io.xn16 + r0 * d, d, W.u16() + v0 * d, d, 0.0f,
              io.tile, n);
  } else {
    gemm(Trans::No, Trans::Yes, C, n, d, 1.0f, io.xn + r0 * d, d, w, d, 0.0f, io.tile, n);
  }
}

// The held rows among W_v's (rows [v0, v0 + n)): their updated fp32 values, w32(n, d), copied
// to held.values before the block is rounded back (ops/tensor.h).
void keep_held_rows(const HeldRows& held, const float* w32, int64_t v0, int64_t n, int64_t d) {
  const int32_t* end = held.rows + held.n;
  const int32_t* a = std::lower_bound(held.rows, end, static_cast<int32_t>(v0));
  const int32_t* b = std::lower_bound(a, end, static_cast<int32_t>(v0 + n));
  for (const int32_t* r = a; r < b; ++r) {
    const float* src = w32 + (*r - v0) * d;
    std::copy(src, src + d, held.values + (r - held.rows) * d);
  }
}

// One pass (training): per tile of C rows × all V entries, the loss and the gradients.
double one_pass(ParamView W, const LmHeadIo& io) {
  const int64_t V = W.rows, d = W.cols, N = io.N;
  const int64_t R = io.tiles.rows, Vb = io.tiles.cols;
  const bool bf16 = io.xn16 != nullptr;
  // A 16-bit W with fp32 products is converted `cols` rows at a time into w_block (twice per
  // row tile: for the logits and for dxn); otherwise each loop over W blocks below runs once,
  // over all V, on W as stored.
  const bool blocked = !bf16 && W.dtype != StorageDtype::F32;
  const int64_t wb = blocked ? Vb : V;
  double sum = 0;
  for (int64_t r0 = 0; r0 < N; r0 += R) {
    const int64_t C = std::min(R, N - r0);
    float* tile = io.tile;  // (C, V): logits, then dlogits
    // logits(C, V) = xn_r(C, d) · Wᵀ(d, V)
    for (int64_t v0 = 0; v0 < V; v0 += wb) {
      const int64_t n = std::min(wb, V - v0);
      if (bf16) {
        gemm_bf16(Trans::No, Trans::Yes, C, n, d, 1.0f, io.xn16 + r0 * d, d, W.u16() + v0 * d, d,
                  0.0f, tile + v0, V);
      } else {
        gemm(Trans::No, Trans::Yes, C, n, d, 1.0f, io.xn + r0 * d, d,
             w_rows(W, v0, n, io.w_block), d, 0.0f, tile + v0, V);
      }
    }
    // In the forward pass this was: nll = lse(logits) − logits[target]. In place:
    // dlogits = scale · (softmax(logits) − onehot); rows without a target get 0.
#pragma omp parallel for reduction(+ : sum)
    for (int64_t i = 0; i < C; ++i) {
      const int64_t r = r0 + i;
      const int32_t t = io.targets[r];
      float* row = tile + i * V;
      if (t < 0) {
        std::fill(row, row + V, 0.0f);
        io.nll[r] = 0;
        continue;
      }
      io.nll[r] = row_loss_and_grad(row, V, t, io.grad_scale);
      sum += io.nll[r];
    }
    if (bf16) to_bf16(io.tile16, tile, C * V);
    for (int64_t v0 = 0; v0 < V; v0 += wb) {
      const int64_t n = std::min(wb, V - v0);
      // dxn_r(C, d) (+)= dlogits_v(C, n) · W_v(n, d);  dW_v(n, d) (+)= dlogits_vᵀ(n, C) · xn_r(C, d)
      if (bf16) {
        gemm_bf16(Trans::No, Trans::No, C, d, n, 1.0f, io.tile16 + v0, V, W.u16() + v0 * d, d,
                  v0 > 0 ? 1.0f : 0.0f, io.dxn + r0 * d, d);
        if (io.dW) {
          gemm_bf16(Trans::Yes, Trans::No, n, d, C, 1.0f, io.tile16 + v0, V, io.xn16 + r0 * d, d,
                    r0 > 0 ? 1.0f : 0.0f, io.dW + v0 * d, d);
        }
      } else {
        gemm(Trans::No, Trans::No, C, d, n, 1.0f, tile + v0, V, w_rows(W, v0, n, io.w_block), d,
             v0 > 0 ? 1.0f : 0.0f, io.dxn + r0 * d, d);
        if (io.dW) {
          gemm(Trans::Yes, Trans::No, n, d, C, 1.0f, tile + v0, V, io.xn + r0 * d, d,
               r0 > 0 ? 1.0f : 0.0f, io.dW + v0 * d, d);
        }
      }
    }
  }
  return sum;
}

}  // namespace

double lm_head_loss(ParamView W, const LmHeadIo& io) {
  const int64_t V = W.rows, d = W.cols, N = io.N;
  const int64_t R = io.tiles.rows, Vb = io.tiles.cols;
  const bool train = io.dxn != nullptr;
  const bool bf16 = io.xn16 != nullptr;
  LOMO_ASSERT(!bf16 || (W.dtype == StorageDtype::BF16 && io.tile16),
              "bf16 LM-head products need a bf16 head and a bf16 tile");
  LOMO_ASSERT(!io.tiles.one_pass || (train && !io.logits_out && !io.update),
              "the one-pass LM head is for training with a gradient buffer only");
  if (io.tiles.one_pass) return one_pass(W, io);
  if (io.logits_out) io.logits_out->resize(static_cast<size_t>(N * V));
  for (int64_t r = 0; r < N; ++r) {
    io.row_stats[2 * r] = -std::numeric_limits<double>::infinity();
    io.row_stats[2 * r + 1] = 0;
    io.nll[r] = 0;
  }
  // Pass 1: the loss. tile(C, n) = xn_r(C, d) · W_v(n, d)ᵀ
  for (int64_t v0 = 0; v0 < V; v0 += Vb) {
    const int64_t n = std::min(Vb, V - v0);
    const float* w = bf16 ? nullptr : w_rows(W, v0, n, io.w_block);  // (n, d)
    for (int64_t r0 = 0; r0 < N; r0 += R) {
      const int64_t C = std::min(R, N - r0);
      logits_tile(W, w, r0, C, v0, n, io);
      if (io.logits_out) {
        for (int64_t i = 0; i < C; ++i) {
          std::copy(io.tile + i * n, io.tile + (i + 1) * n,
                    io.logits_out->data() + (r0 + i) * V + v0);
        }
      }
      accumulate_lse(io.tile, C, n, r0, v0, io);
    }
  }
  double sum = 0;
  for (int64_t r = 0; r < N; ++r) {
    if (io.targets[r] < 0) continue;
    const double lse = io.row_stats[2 * r] + std::log(io.row_stats[2 * r + 1]);
    io.row_stats[2 * r] = lse;
    io.nll[r] = static_cast<float>(lse - io.nll[r]);
    sum += io.nll[r];
  }
  if (!train) return sum;
  const SgdStep* u = io.update;
  LOMO_ASSERT(!u || (io.dW == nullptr && R >= N),
              "the LM head's zero-buffer update needs every row in one tile and no dW");
  if (u && !std::isfinite(sum)) return sum;  // W untouched; the caller stops the run
  // Pass 2: the gradients. In the forward pass this was: nll = cross_entropy(logits),
  // logits = xn · Wᵀ.
  for (int64_t v0 = 0; v0 < V; v0 += Vb) {
    const int64_t n = std::min(Vb, V - v0);
    const float* w = bf16 ? nullptr : w_rows(W, v0, n, io.w_block);  // (n, d)
    for (int64_t r0 = 0; r0 < N; r0 += R) {
      const int64_t C = std::min(R, N - r0);
      float* tile = io.tile;  // (C, n): logits, then dlogits
      logits_tile(W, w, r0, C, v0, n, io);
      logits_to_grad(tile, C, n, r0, v0, io);
      if (bf16) {
        to_bf16(io.tile16, tile, C * n);
        // dxn_r(C, d) (+)= dlogits(C, n) · W_v(n, d);  dW_v(n, d) (+)= dlogitsᵀ(n, C) · xn_r(C, d)
        gemm_bf16(Trans::No, Trans::No, C, d, n, 1.0f, io.tile16, n, W.u16() + v0 * d, d,
                  v0 > 0 ? 1.0f : 0.0f, io.dxn + r0 * d, d);
        if (io.dW) {
          gemm_bf16(Trans::Yes, Trans::No, n, d, C, 1.0f, io.tile16, n, io.xn16 + r0 * d, d,
                    r0 > 0 ? 1.0f : 0.0f, io.dW + v0 * d, d);
        } else if (u) {
          // W_v (read for the last time above) ← keep·W_v − step·dlogitsᵀ·xn, in fp32.
          to_f32(io.w_block, W, v0 * d, n * d);
          gemm_bf16(Trans::Yes, Trans::No, n, d, C, -u->step, io.tile16, n, io.xn16 + r0 * d, d,
                    u->keep, io.w_block, d);
          keep_held_rows(io.held, io.w_block, v0, n, d);
          store_rounded(W, io.w_block, u->rounding, v0 * d, n * d);
        }
        continue;
      }
      // dxn_r(C, d) (+)= dlogits(C, n) · W_v(n, d)
      gemm(Trans::No, Trans::No, C, d, n, 1.0f, tile, n, w, d, v0 > 0 ? 1.0f : 0.0f,
           io.dxn + r0 * d, d);
      // dW_v(n, d) (+)= dlogitsᵀ(n, C) · xn_r(C, d), unless the head is frozen
      if (io.dW) {
        gemm(Trans::Yes, Trans::No, n, d, C, 1.0f, tile, n, io.xn + r0 * d, d,
             r0 > 0 ? 1.0f : 0.0f, io.dW + v0 * d, d);
      } else if (u) {
        // W_v (read for the last time above) ← keep·W_v − step·dlogitsᵀ·xn: W's own rows, or
        // their fp32 copy in w_block, written back once.
        float* w32 = W.dtype == StorageDtype::F32 ? W.f32() + v0 * d : io.w_block;  // (n, d)
        gemm(Trans::Yes, Trans::No, n, d, C, -u->step, tile, n, io.xn + r0 * d, d, u->keep, w32,
             d);
        keep_held_rows(io.held, w32, v0, n, d);
        store_rounded(W, w32, u->rounding, v0 * d, n * d);
      }
    }
  }
  return sum;
}

}  // namespace lomo
