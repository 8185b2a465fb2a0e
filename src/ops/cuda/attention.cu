// Causal attention with grouped key/value heads on the GPU, in fp32: the fallback for the shapes
// cuDNN's fused kernel rejects (head_dim 8 test fixtures, fp32 runs) and the reference the cuDNN
// path will be tested against. Same statistics as the CPU (ops/cpu/attention.h): per query row
// the max m of its scores and r = 1/Σ exp(s − m), sums of exponentials in fp64; padding rows get
// out 0 and stats 0, 0. Shapes and the padding rule: ops/attention.h. Warps, lanes and tiles:
// ops/cuda/attention_tiles.cuh.
//
// Forward, one block per (b, head, 16 query rows), each warp owning 4 rows: key and value tiles
// of 32 rows stream through shared memory; per tile a lane scores one key against the warp's 4
// rows, the warp takes the tile's max and Σ exp (online softmax: the running sum and the output
// accumulator are rescaled by exp(m_old − m_new)), then adds P·v, one head dimension per lane.
// attention_cached runs the same kernel with the keys of a cache and queries at past + i.
//
// Backward, from the stats (P = exp(s − m)·r is recomputed, never stored):
//   dq kernel, blocks as the forward's: sweep 1 over the key tiles gives D_i = Σ_j P_ij·dP_ij
//     (dP = dO·vᵀ; D = rowsum(dO ⊙ O) without O, in fp64 as the CPU), kept in the workspace;
//     sweep 2 gives dq_i = Σ_j dS_ij·k_j with dS = P ⊙ (dP − D)·scale.
//   dk/dv kernel, one block per (b, kv head, 16 key rows), each warp owning 4 keys: it loops over
//     the group's query heads, then over query tiles of 32 rows from its first key on, a lane per
//     query: dv_j = Σ_h Σ_i P_ij·dO_i, dk_j = Σ_h Σ_i dS_ij·q_i. Every sum runs in one fixed
//     order in one thread: no atomics, results independent of the launch.
// Accumulation rule: forward OVERWRITES out and stats, backward dq, dk and dv, attention_cached
// out. The workspace holds D (B, n_head, T) between the two backward kernels.
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "ops/cuda/attention_tiles.cuh"
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/cuda_util.h"
#include "ops/cuda/device_plan.h"
#if defined(LOMO_HAVE_CUDNN_FRONTEND)
#include "ops/cuda/attention_cudnn.h"
#endif

namespace lomo::cuda {

namespace {

using attn::kBlockRows;
using attn::kFull;
using attn::kRowsPerWarp;
using attn::kThreads;
using attn::kTile;
using attn::kWarpSize;

// The forward of rows i < q_rows over keys j ≤ past + i; training has past = 0 and the keys of
// the same T rows (k_rows = q_rows), the cache k_rows = capacity.
struct ForwardArgs {
  float* out;              // (B, q_rows, n_head, hd)
  float* stats;            // (B, n_head, q_rows, 2), or null (attention_cached)
  const float* q;          // (B, q_rows, n_head, hd)
  const float* k;          // (B, k_rows, n_kv, hd)
  const float* v;          // (B, k_rows, n_kv, hd)
  const int32_t* lengths;  // (B) real rows per sequence, or null: every row is real
  int64_t q_rows, k_rows, past;
  int n_head, n_kv, group, hd;
  float scale;
};

template <int E>
__global__ void __launch_bounds__(kThreads) forward_kernel(ForwardArgs a) {
  extern __shared__ float smem[];
  const int hd = a.hd, ld = hd + 1;  // tiles a lane reads by rows are padded: no bank conflicts
  float* Ks = smem;                  // (kTile, hd + 1) the tile's keys
  float* Vs = Ks + kTile * ld;       // (kTile, hd + 1) the tile's values
  float* Qs = Vs + kTile * ld;       // (kBlockRows, hd) the block's query rows
  const int tid = static_cast<int>(threadIdx.x), warp = tid / kWarpSize, lane = tid % kWarpSize;
  const int64_t b = blockIdx.z;
  const int h = static_cast<int>(blockIdx.y), g = h / a.group;
  const int64_t ldq = int64_t{a.n_head} * hd, ldk = int64_t{a.n_kv} * hd;
  const int64_t i0 = int64_t{blockIdx.x} * kBlockRows;
  const int64_t i1 = min(a.q_rows, i0 + kBlockRows);
  const int64_t L = a.lengths ? min(int64_t{a.lengths[b]}, a.q_rows) : a.q_rows;
  const int64_t e = min(max(L, i0), i1);                // real rows are [i0, e)
  const float* qb = a.q + b * a.q_rows * ldq + h * hd;  // row i at qb + i·ldq
  float* ob = a.out + b * a.q_rows * ldq + h * hd;
  float* sb = a.stats ? a.stats + (b * a.n_head + h) * a.q_rows * 2 : nullptr;  // (q_rows, 2)
  const float* kb = a.k + b * a.k_rows * ldk + g * hd;  // key j at kb + j·ldk
  const float* vb = a.v + b * a.k_rows * ldk + g * hd;

  for (int64_t idx = tid; idx < (i1 - e) * hd; idx += kThreads) {
    ob[(e + idx / hd) * ldq + idx % hd] = 0.0f;
  }
  if (sb) {
    for (int64_t t = e + tid; t < i1; t += kThreads) sb[2 * t] = sb[2 * t + 1] = 0.0f;
  }
  if (e == i0) return;  // the whole block is padding
  const int nq = static_cast<int>(e - i0);
  attn::load_rows(Qs, hd, qb + i0 * ldq, ldq, nq, kBlockRows, hd);

  float m[kRowsPerWarp], acc[kRowsPerWarp][E];
  double l[kRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0;
#pragma unroll
    for (int x = 0; x < E; ++x) acc[rr][x] = 0.0f;
  }
  const int64_t n_keys = a.past + e;  // the block's last real row sees keys [0, past + e)
  for (int64_t j0 = 0; j0 < n_keys; j0 += kTile) {
    const int nk = static_cast<int>(min(int64_t{kTile}, n_keys - j0));
    __syncthreads();  // the previous tile is consumed (and, the first time, Qs is written)
    attn::load_rows(Ks, ld, kb + j0 * ldk, ldk, nk, kTile, hd);
    attn::load_rows(Vs, ld, vb + j0 * ldk, ldk, nk, kTile, hd);
    __syncthreads();
    // s(rows, key lane) = q_row · k_lane
    float s[kRowsPerWarp] = {};
    for (int c = 0; c < hd; ++c) {
      const float kc = Ks[lane * ld + c];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr)
        s[rr] += Qs[(warp * kRowsPerWarp + rr) * hd + c] * kc;
    }
    float p[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int r = warp * kRowsPerWarp + rr;
      p[rr] = 0.0f;
      if (r >= nq) continue;  // warp-uniform
      const bool visible = lane < nk && j0 + lane <= a.past + i0 + r;
      const float sc = visible ? s[rr] * a.scale : -INFINITY;
      // Key 0 is visible to every row, so the max is finite from the first tile on; there the
      // old max is −∞ and alpha = 0 rescales nothing that was not 0.
      const float m_new = fmaxf(m[rr], attn::warp_max(sc));
      const float alpha = expf(m[rr] - m_new);
      p[rr] = visible ? expf(sc - m_new) : 0.0f;
      l[rr] = l[rr] * static_cast<double>(alpha) + attn::warp_sum(static_cast<double>(p[rr]));
      m[rr] = m_new;
#pragma unroll
      for (int x = 0; x < E; ++x) acc[rr][x] *= alpha;
    }
    // acc(rows, hd) += P(rows, nk) · v(nk, hd), one dimension per lane
    for (int jj = 0; jj < nk; ++jj) {
      float pj[kRowsPerWarp];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) pj[rr] = __shfl_sync(kFull, p[rr], jj);
#pragma unroll
      for (int x = 0; x < E; ++x) {
        const int c = lane + kWarpSize * x;
        if (c >= hd) continue;
        const float vc = Vs[jj * ld + c];
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) acc[rr][x] += pj[rr] * vc;
      }
    }
  }
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int r = warp * kRowsPerWarp + rr;
    if (r >= nq) continue;
    const int64_t i = i0 + r;
    const auto inv = static_cast<float>(1.0 / l[rr]);
#pragma unroll
    for (int x = 0; x < E; ++x) {
      const int c = lane + kWarpSize * x;
      if (c < hd) ob[i * ldq + c] = acc[rr][x] * inv;
    }
    if (sb && lane == 0) {
      sb[2 * i] = m[rr];
      sb[2 * i + 1] = inv;
    }
  }
}

struct BackwardArgs {
  float* dq;               // (B, T, n_head, hd)
  float* dk;               // (B, T, n_kv, hd)
  float* dv;               // (B, T, n_kv, hd)
  float* D;                // (B, n_head, T) workspace: Σ_j P·dP per query row
  const float* dout;       // (B, T, n_head, hd)
  const float* stats;      // (B, n_head, T, 2)
  const float* q;          // (B, T, n_head, hd)
  const float* k;          // (B, T, n_kv, hd)
  const float* v;          // (B, T, n_kv, hd)
  const int32_t* lengths;  // (B)
  int64_t T;
  int n_head, n_kv, group, hd;
  float scale;
};

// dq and D, blocks as the forward's: one per (b, head, 16 query rows).
template <int E>
__global__ void __launch_bounds__(kThreads, 1) dq_kernel(BackwardArgs a) {
  extern __shared__ float smem[];
  const int hd = a.hd, ld = hd + 1;
  float* Ks = smem;                   // (kTile, hd + 1)
  float* Vs = Ks + kTile * ld;        // (kTile, hd + 1)
  float* Qs = Vs + kTile * ld;        // (kBlockRows, hd)
  float* dOs = Qs + kBlockRows * hd;  // (kBlockRows, hd)
  const int tid = static_cast<int>(threadIdx.x), warp = tid / kWarpSize, lane = tid % kWarpSize;
  const int64_t b = blockIdx.z;
  const int h = static_cast<int>(blockIdx.y), g = h / a.group;
  const int64_t ldq = int64_t{a.n_head} * hd, ldk = int64_t{a.n_kv} * hd;
  const int64_t i0 = int64_t{blockIdx.x} * kBlockRows;
  const int64_t i1 = min(a.T, i0 + kBlockRows);
  const int64_t L = min(int64_t{a.lengths[b]}, a.T);
  const int64_t e = min(max(L, i0), i1);  // real rows are [i0, e); they see keys [0, e)
  const int64_t qoff = b * a.T * ldq + h * hd, koff = b * a.T * ldk + g * hd;
  float* dqb = a.dq + qoff;                                  // row i at dqb + i·ldq
  float* Db = a.D + (b * a.n_head + h) * a.T;                // (T)
  const float* sb = a.stats + (b * a.n_head + h) * a.T * 2;  // (T, 2)

  for (int64_t idx = tid; idx < (i1 - e) * hd; idx += kThreads) {
    dqb[(e + idx / hd) * ldq + idx % hd] = 0.0f;
  }
  for (int64_t t = e + tid; t < i1; t += kThreads) Db[t] = 0.0f;
  if (e == i0) return;
  const int nq = static_cast<int>(e - i0);
  attn::load_rows(Qs, hd, a.q + qoff + i0 * ldq, ldq, nq, kBlockRows, hd);
  attn::load_rows(dOs, hd, a.dout + qoff + i0 * ldq, ldq, nq, kBlockRows, hd);
  float mrow[kRowsPerWarp], irow[kRowsPerWarp], Dr[kRowsPerWarp];
  double Dsum[kRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int r = warp * kRowsPerWarp + rr;
    mrow[rr] = r < nq ? sb[2 * (i0 + r)] : 0.0f;
    irow[rr] = r < nq ? sb[2 * (i0 + r) + 1] : 0.0f;
    Dsum[rr] = 0;
    Dr[rr] = 0.0f;
  }

  // In the forward pass this was: P = exp(scale·q·kᵀ − m)·r, out = P·v. Sweep 1 gives D, sweep 2
  // dq; each recomputes s and dP for its key tile.
  float dqa[kRowsPerWarp][E];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
#pragma unroll
    for (int x = 0; x < E; ++x) dqa[rr][x] = 0.0f;
  }
#pragma unroll
  for (int sweep = 0; sweep < 2; ++sweep) {
    for (int64_t j0 = 0; j0 < e; j0 += kTile) {
      const int nk = static_cast<int>(min(int64_t{kTile}, e - j0));
      __syncthreads();
      attn::load_rows(Ks, ld, a.k + koff + j0 * ldk, ldk, nk, kTile, hd);
      attn::load_rows(Vs, ld, a.v + koff + j0 * ldk, ldk, nk, kTile, hd);
      __syncthreads();
      // s(rows, key lane) = q·k, dP(rows, key lane) = dO·v
      float s[kRowsPerWarp] = {}, dp[kRowsPerWarp] = {};
      for (int c = 0; c < hd; ++c) {
        const float kc = Ks[lane * ld + c], vc = Vs[lane * ld + c];
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) {
          s[rr] += Qs[(warp * kRowsPerWarp + rr) * hd + c] * kc;
          dp[rr] += dOs[(warp * kRowsPerWarp + rr) * hd + c] * vc;
        }
      }
      float ds[kRowsPerWarp];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        const int r = warp * kRowsPerWarp + rr;
        ds[rr] = 0.0f;
        if (r >= nq) continue;  // warp-uniform
        const bool visible = lane < nk && j0 + lane <= i0 + r;
        const float P = visible ? expf(s[rr] * a.scale - mrow[rr]) * irow[rr] : 0.0f;
        if (sweep == 0) {
          Dsum[rr] += attn::warp_sum(static_cast<double>(dp[rr]) * P);
        } else {
          ds[rr] = visible ? P * (dp[rr] - Dr[rr]) * a.scale : 0.0f;
        }
      }
      if (sweep == 0) continue;
      // dq(rows, hd) += dS(rows, nk) · k(nk, hd)
      for (int jj = 0; jj < nk; ++jj) {
        float dsj[kRowsPerWarp];
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) dsj[rr] = __shfl_sync(kFull, ds[rr], jj);
#pragma unroll
        for (int x = 0; x < E; ++x) {
          const int c = lane + kWarpSize * x;
          if (c >= hd) continue;
          const float kc = Ks[jj * ld + c];
#pragma unroll
          for (int rr = 0; rr < kRowsPerWarp; ++rr) dqa[rr][x] += dsj[rr] * kc;
        }
      }
    }
    if (sweep == 1) break;
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int r = warp * kRowsPerWarp + rr;
      Dr[rr] = static_cast<float>(Dsum[rr]);  // as the CPU: D rounded to fp32 before dS
      if (r < nq && lane == 0) Db[i0 + r] = Dr[rr];
    }
  }
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int r = warp * kRowsPerWarp + rr;
    if (r >= nq) continue;
#pragma unroll
    for (int x = 0; x < E; ++x) {
      const int c = lane + kWarpSize * x;
      if (c < hd) dqb[(i0 + r) * ldq + c] = dqa[rr][x];
    }
  }
}

// dk and dv: one block per (b, kv head, 16 key rows), each warp owning 4 keys, over the group's
// query heads and the query rows i ≥ the block's first key.
template <int E>
__global__ void __launch_bounds__(kThreads) dkdv_kernel(BackwardArgs a) {
  extern __shared__ float smem[];
  const int hd = a.hd, ld = hd + 1;
  float* Qs = smem;                  // (kTile, hd + 1) the tile's query rows
  float* dOs = Qs + kTile * ld;      // (kTile, hd + 1) their output gradients
  float* Kb = dOs + kTile * ld;      // (kBlockRows, hd) the block's keys
  float* Vb = Kb + kBlockRows * hd;  // (kBlockRows, hd) the block's values
  float* rm = Vb + kBlockRows * hd;  // (kTile) the tile rows' max
  float* ri = rm + kTile;            // (kTile) their 1/Σ
  float* rD = ri + kTile;            // (kTile) their D
  const int tid = static_cast<int>(threadIdx.x), warp = tid / kWarpSize, lane = tid % kWarpSize;
  const int64_t b = blockIdx.z;
  const int g = static_cast<int>(blockIdx.y);
  const int64_t ldq = int64_t{a.n_head} * hd, ldk = int64_t{a.n_kv} * hd;
  const int64_t j0 = int64_t{blockIdx.x} * kBlockRows;
  const int64_t j1 = min(a.T, j0 + kBlockRows);
  const int64_t L = min(int64_t{a.lengths[b]}, a.T);
  const int64_t je = min(max(L, j0), j1);  // keys [j0, je) have real queries after them
  const int64_t koff = b * a.T * ldk + g * hd;
  float* dkb = a.dk + koff;  // key j at dkb + j·ldk
  float* dvb = a.dv + koff;

  for (int64_t idx = tid; idx < (j1 - je) * hd; idx += kThreads) {
    const int64_t at = (je + idx / hd) * ldk + idx % hd;
    dkb[at] = 0.0f;
    dvb[at] = 0.0f;
  }
  if (je == j0) return;
  const int nkeys = static_cast<int>(je - j0);
  attn::load_rows(Kb, hd, a.k + koff + j0 * ldk, ldk, nkeys, kBlockRows, hd);
  attn::load_rows(Vb, hd, a.v + koff + j0 * ldk, ldk, nkeys, kBlockRows, hd);

  float dka[kRowsPerWarp][E], dva[kRowsPerWarp][E];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
#pragma unroll
    for (int x = 0; x < E; ++x) dka[rr][x] = dva[rr][x] = 0.0f;
  }
  for (int hl = 0; hl < a.group; ++hl) {
    const int h = g * a.group + hl;
    const int64_t qoff = b * a.T * ldq + int64_t{h} * hd;
    const float* sb = a.stats + (b * a.n_head + h) * a.T * 2;  // (T, 2)
    const float* Db = a.D + (b * a.n_head + h) * a.T;          // (T)
    for (int64_t i0 = j0; i0 < L; i0 += kTile) {
      const int ni = static_cast<int>(min(int64_t{kTile}, L - i0));
      __syncthreads();  // the previous tile is consumed (the first time: Kb, Vb are written)
      attn::load_rows(Qs, ld, a.q + qoff + i0 * ldq, ldq, ni, kTile, hd);
      attn::load_rows(dOs, ld, a.dout + qoff + i0 * ldq, ldq, ni, kTile, hd);
      if (tid < kTile) {
        rm[tid] = tid < ni ? sb[2 * (i0 + tid)] : 0.0f;
        ri[tid] = tid < ni ? sb[2 * (i0 + tid) + 1] : 0.0f;
        rD[tid] = tid < ni ? Db[i0 + tid] : 0.0f;
      }
      __syncthreads();
      // s(query lane, keys) = q·k, dP(query lane, keys) = dO·v
      float s[kRowsPerWarp] = {}, dp[kRowsPerWarp] = {};
      for (int c = 0; c < hd; ++c) {
        const float qc = Qs[lane * ld + c], doc = dOs[lane * ld + c];
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) {
          s[rr] += qc * Kb[(warp * kRowsPerWarp + rr) * hd + c];
          dp[rr] += doc * Vb[(warp * kRowsPerWarp + rr) * hd + c];
        }
      }
      // In the forward pass this was: P = exp(scale·s − m)·r; dS = P ⊙ (dP − D)·scale.
      float P[kRowsPerWarp], ds[kRowsPerWarp];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        const int jr = warp * kRowsPerWarp + rr;
        const bool visible = jr < nkeys && lane < ni && i0 + lane >= j0 + jr;
        P[rr] = visible ? expf(s[rr] * a.scale - rm[lane]) * ri[lane] : 0.0f;
        ds[rr] = visible ? P[rr] * (dp[rr] - rD[lane]) * a.scale : 0.0f;
      }
      // dv(keys, hd) += Pᵀ · dO(ni, hd);  dk(keys, hd) += dSᵀ · q(ni, hd)
      for (int ii = 0; ii < ni; ++ii) {
        float pi[kRowsPerWarp], dsi[kRowsPerWarp];
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) {
          pi[rr] = __shfl_sync(kFull, P[rr], ii);
          dsi[rr] = __shfl_sync(kFull, ds[rr], ii);
        }
#pragma unroll
        for (int x = 0; x < E; ++x) {
          const int c = lane + kWarpSize * x;
          if (c >= hd) continue;
          const float doc = dOs[ii * ld + c], qc = Qs[ii * ld + c];
#pragma unroll
          for (int rr = 0; rr < kRowsPerWarp; ++rr) {
            dva[rr][x] += pi[rr] * doc;
            dka[rr][x] += dsi[rr] * qc;
          }
        }
      }
    }
  }
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int jr = warp * kRowsPerWarp + rr;
    if (jr >= nkeys) continue;
#pragma unroll
    for (int x = 0; x < E; ++x) {
      const int c = lane + kWarpSize * x;
      if (c < hd) {
        dkb[(j0 + jr) * ldk + c] = dka[rr][x];
        dvb[(j0 + jr) * ldk + c] = dva[rr][x];
      }
    }
  }
}

// Shared memory of each kernel, in bytes.
size_t forward_smem(int hd) {
  return sizeof(float) * (2 * kTile * (hd + 1) + kBlockRows * hd);
}
size_t dq_smem(int hd) {
  return sizeof(float) * (2 * kTile * (hd + 1) + 2 * kBlockRows * hd);
}
size_t dkdv_smem(int hd) {
  return sizeof(float) * (2 * kTile * (hd + 1) + 2 * kBlockRows * hd + 3 * kTile);
}

// f(std::integral_constant<int, E>) with E = ⌈hd / 32⌉, 1 … 8.
template <class F>
void with_lanes_per_dim(int hd, F&& f) {
  switch ((hd + kWarpSize - 1) / kWarpSize) {
    case 1:
      f(std::integral_constant<int, 1>{});
      break;
    case 2:
      f(std::integral_constant<int, 2>{});
      break;
    case 3:
      f(std::integral_constant<int, 3>{});
      break;
    case 4:
      f(std::integral_constant<int, 4>{});
      break;
    case 5:
      f(std::integral_constant<int, 5>{});
      break;
    case 6:
      f(std::integral_constant<int, 6>{});
      break;
    case 7:
      f(std::integral_constant<int, 7>{});
      break;
    default:
      f(std::integral_constant<int, 8>{});
      break;
  }
}

// Launches kernel<<<grid, kThreads, smem>>>(args), raising its dynamic shared-memory limit first
// when it needs more than the default 48 KiB.
template <class Args>
void launch(void (*kernel)(Args), dim3 grid, size_t smem, cudaStream_t stream, const Args& args,
            const char* name) {
  if (smem > 48 * 1024) {
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(smem)),
          name);
  }
  kernel<<<grid, kThreads, smem, stream>>>(args);
  check_launch(name);
}

// The shapes the kernels take: whole GQA groups, head_dim ≤ 256, and heads and sequences within
// the grid's y and z limits (65535 each).
void check_shape(const char* op, int64_t B, int64_t n_head, int64_t n_kv, int64_t head_dim) {
  if (n_kv <= 0 || n_head % n_kv != 0) {
    throw Error(std::string("cuda ") + op + ": n_head " + std::to_string(n_head) +
                " is not a multiple of n_kv " + std::to_string(n_kv));
  }
  if (head_dim < 1 || head_dim > attn::kMaxE * kWarpSize) {
    throw Error(std::string("cuda ") + op + ": head_dim " + std::to_string(head_dim) +
                " outside the fp32 kernel's 1 … 256");
  }
  if (n_head > 65535) {
    throw Error(std::string("cuda ") + op + ": " + std::to_string(n_head) + " heads > 65535");
  }
  if (B > 65535) {
    throw Error(std::string("cuda ") + op + ": batch " + std::to_string(B) + " > 65535");
  }
}

float inverse_sqrt(int64_t n) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
}

unsigned tiles_of(int64_t rows) {
  return static_cast<unsigned>((rows + kBlockRows - 1) / kBlockRows);
}

}  // namespace

// A shape cuDNN's fused attention takes (a bf16 run, attention_cudnn.h's rule, graphs built)
// runs there in forward and backward alike, so its statistics (logsumexp) never meet the fp32
// kernels' (max, 1/Σexp); every other shape runs on the fp32 kernels below. Asking for the
// workspace builds the graphs, outside the timed steps.
int64_t CudaBackend::attention_workspace_elems(const AttnDims& d) const {
  // The planner's formula (device_plan.h), which `lomo memory --device cuda` uses without a
  // GPU. takes() builds the shape's graphs now, while planning, not inside a step; a shape cuDNN
  // rejects declares only the fp32 kernels' scratch (the plan without a GPU over-counts it).
  bool cudnn = false;
#if defined(LOMO_HAVE_CUDNN_FRONTEND)
  if (cudnn_attn_) cudnn = cudnn_attn_->takes(d);
#endif
  return cuda::attention_workspace_elems(d, cudnn);
}

void CudaBackend::attention_forward(float* out, float* stats, float* work, const float* q,
                                    const float* k, const float* v, const int32_t* lengths,
                                    const AttnDims& d) {
  (void)work;  // the fp32 forward needs no scratch (cuDNN's does)
  check_shape("attention_forward", d.B, d.n_head, d.n_kv, d.head_dim);
  if (d.B == 0 || d.T == 0) return;
#if defined(LOMO_HAVE_CUDNN_FRONTEND)
  if (cudnn_attn_ && cudnn_attn_->forward(stream_, out, stats, work, q, k, v, lengths, d)) return;
#endif
  const ForwardArgs a{out,
                      stats,
                      q,
                      k,
                      v,
                      lengths,
                      d.T,
                      d.T,
                      0,
                      static_cast<int>(d.n_head),
                      static_cast<int>(d.n_kv),
                      static_cast<int>(d.n_head / d.n_kv),
                      static_cast<int>(d.head_dim),
                      inverse_sqrt(d.head_dim)};
  const dim3 grid(tiles_of(d.T), static_cast<unsigned>(d.n_head), static_cast<unsigned>(d.B));
  with_lanes_per_dim(a.hd, [&](auto lanes) {
    launch(forward_kernel<decltype(lanes)::value>, grid, forward_smem(a.hd), stream_, a,
           "attention_forward");
  });
}

void CudaBackend::attention_backward(float* dq, float* dk, float* dv, float* work,
                                     const float* dout, const float* stats, const float* q,
                                     const float* k, const float* v, const int32_t* lengths,
                                     const AttnDims& d) {
  check_shape("attention_backward", d.B, d.n_head, d.n_kv, d.head_dim);
  if (d.B == 0 || d.T == 0) return;
#if defined(LOMO_HAVE_CUDNN_FRONTEND)
  if (cudnn_attn_ &&
      cudnn_attn_->backward(stream_, dq, dk, dv, work, dout, stats, q, k, v, lengths, d)) {
    return;
  }
#endif
  LOMO_ASSERT(work != nullptr, "attention_backward: no workspace for D");
  const BackwardArgs a{dq,
                       dk,
                       dv,
                       work,
                       dout,
                       stats,
                       q,
                       k,
                       v,
                       lengths,
                       d.T,
                       static_cast<int>(d.n_head),
                       static_cast<int>(d.n_kv),
                       static_cast<int>(d.n_head / d.n_kv),
                       static_cast<int>(d.head_dim),
                       inverse_sqrt(d.head_dim)};
  with_lanes_per_dim(a.hd, [&](auto lanes) {
    constexpr int E = decltype(lanes)::value;
    launch(dq_kernel<E>,
           dim3(tiles_of(d.T), static_cast<unsigned>(d.n_head), static_cast<unsigned>(d.B)),
           dq_smem(a.hd), stream_, a, "attention_backward (dq)");
    launch(dkdv_kernel<E>,
           dim3(tiles_of(d.T), static_cast<unsigned>(d.n_kv), static_cast<unsigned>(d.B)),
           dkdv_smem(a.hd), stream_, a, "attention_backward (dk, dv)");
  });
}

int64_t CudaBackend::attention_cached_workspace_elems(const KvAttnDims&) const {
  return 0;  // the forward kernel keeps everything in registers and shared memory
}

void CudaBackend::attention_cached(float* out, float*, const float* q, const float* k_cache,
                                   const float* v_cache, const KvAttnDims& d) {
  if (d.past < 0 || d.Tq < 1 || d.past + d.Tq > d.capacity) {
    throw Error("cuda attention_cached: positions [" + std::to_string(d.past) + ", " +
                std::to_string(d.past + d.Tq) + ") beyond the cache's " +
                std::to_string(d.capacity));
  }
  check_shape("attention_cached", d.B, d.n_head, d.n_kv, d.head_dim);
  if (d.B == 0) return;
  const ForwardArgs a{out,
                      nullptr,
                      q,
                      k_cache,
                      v_cache,
                      nullptr,
                      d.Tq,
                      d.capacity,
                      d.past,
                      static_cast<int>(d.n_head),
                      static_cast<int>(d.n_kv),
                      static_cast<int>(d.n_head / d.n_kv),
                      static_cast<int>(d.head_dim),
                      inverse_sqrt(d.head_dim)};
  const dim3 grid(tiles_of(d.Tq), static_cast<unsigned>(d.n_head), static_cast<unsigned>(d.B));
  with_lanes_per_dim(a.hd, [&](auto lanes) {
    launch(forward_kernel<decltype(lanes)::value>, grid, forward_smem(a.hd), stream_, a,
           "attention_cached");
  });
}

}  // namespace lomo::cuda
