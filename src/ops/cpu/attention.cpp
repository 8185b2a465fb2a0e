#include "ops/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <utility>

#include "ops/cpu/block_gemm.h"
#include "ops/cpu/vexp.h"

namespace lomo {

namespace {

constexpr int64_t kB = kAttnBlock;

// Where one (b, kv group) pair's rows live, and the block-row layout both passes share: a query
// block of positions [i0, i0 + nq) holds R = group · nq rows, head by head (row r = hl·nq + tl is
// head g·group + hl at position i0 + tl). Since query and key blocks are cut at the same
// multiples of kB, every key block j0 < i0 + nq starts at or before every row's position.
template <class T>
struct GroupView {
  const AttnDims& d;
  int64_t b, g, group, ldq, ldk;

  GroupView(const AttnDims& dims, int64_t b_, int64_t g_)
      : d(dims), b(b_), g(g_), group(dims.n_head / dims.n_kv), ldq(dims.n_head * dims.head_dim),
        ldk(dims.n_kv * dims.head_dim) {}

  int64_t head(int64_t hl) const { return g * group + hl; }
  // Row t of query-shaped x(B, T, n_head, hd), head g·group + hl.
  template <class P>
  P* qrow(P* x, int64_t t, int64_t hl) const {
    return x + (b * d.T + t) * ldq + head(hl) * d.head_dim;
  }
  // Row t of key-shaped x(B, T, n_kv, hd), head g.
  template <class P>
  P* krow(P* x, int64_t t) const {
    return x + (b * d.T + t) * ldk + g * d.head_dim;
  }
  // xp(R, hd) ← rows [i0, i0 + nq) of the group's heads of query-shaped x.
  void pack_rows(T* xp, const T* x, int64_t i0, int64_t nq) const {
    for (int64_t hl = 0; hl < group; ++hl) {
      for (int64_t tl = 0; tl < nq; ++tl) {
        const T* from = qrow(x, i0 + tl, hl);
        T* to = xp + (hl * nq + tl) * d.head_dim;
#pragma omp simd
        for (int64_t c = 0; c < d.head_dim; ++c) to[c] = from[c];  // inline: rows of 64 floats
      }
    }
  }
};

// Per-thread scratch, carved in the order attention_thread_elems counts it; the fp64 part first,
// so that it is 8-byte aligned.
template <class T>
T* thread_scratch(T* work, const AttnDims& d) {
  return work + omp_get_thread_num() * attention_thread_elems(d);
}

// n zeroed fp64 values at the start of a thread's scratch (2n elements reserved for them, which
// holds n doubles for T = float or double); placement new starts their lifetime there.
template <class T>
double* carve_doubles(T* at, int64_t n) {
  auto* p = reinterpret_cast<double*>(at);
  for (int64_t i = 0; i < n; ++i) ::new (p + i) double(0);
  return p;
}

// One query block of the forward: out rows and stats of positions [i0, i0 + kB) ∩ [0, T) of the
// group's heads.
template <class T>
void forward_block(T* out, T* stats, T* work, const T* q, const T* k, const T* v, int64_t L,
                   const GroupView<T>& gv, int64_t i0, T scale) {
  const AttnDims& d = gv.d;
  const int64_t hd = d.head_dim;
  const int64_t i1 = std::min(d.T, i0 + kB);
  const int64_t e = std::clamp(L, i0, i1);  // real rows are [i0, e)
  const int64_t nq = e - i0, R = gv.group * nq;
  for (int64_t hl = 0; hl < gv.group; ++hl) {
    T* st = stats + (gv.b * d.n_head + gv.head(hl)) * d.T * 2;  // (T, 2)
    for (int64_t t = e; t < i1; ++t) {
      std::memset(gv.qrow(out, t, hl), 0, sizeof(T) * hd);
      st[2 * t] = st[2 * t + 1] = 0;
    }
  }
  if (nq == 0) return;

  // Scores are computed transposed, keys by rows: Sᵀ = k·qᵀ needs qᵀ once per task (not kᵀ per key
  // block), and a row's max and sum over keys become element-wise operations down the columns,
  // vectorised across query rows, with no horizontal reduction.
  const int64_t Rmax = gv.group * kB;
  double* sum = carve_doubles(work, R);  // (R) Σ exp(s − m) so far
  T* mx = work + 2 * Rmax;               // (R) running max
  T* alpha = mx + Rmax;                  // (R) the block's max, then exp(m_old − m_new)
  T* qt = alpha + Rmax;                  // (hd, R)
  T* acc = qt + Rmax * hd;               // (R, hd) unnormalised output
  T* St = acc + Rmax * hd;               // (nk, R) scores, then probabilities
  for (int64_t hl = 0; hl < gv.group; ++hl) {
    for (int64_t tl = 0; tl < nq; ++tl) {
      const T* row = gv.qrow(q, i0 + tl, hl);
      for (int64_t c = 0; c < hd; ++c) qt[c * R + hl * nq + tl] = row[c];
    }
  }
  std::fill(acc, acc + R * hd, T(0));

  for (int64_t j0 = 0; j0 < e; j0 += kB) {
    const int64_t nk = std::min(e, j0 + kB) - j0;
    // Sᵀ(nk, R) = scale · k(nk, hd) · qᵀ(hd, R)
    block_gemm(Accumulate::No, nk, R, hd, scale, gv.krow(k, j0), gv.ldk, 1, qt, R, St, R);
    // The diagonal block (j0 = i0): key j0 + j is after the rows at positions i0 + tl < j0 + j.
    const bool diagonal = j0 == i0;
    if (diagonal)
      for (int64_t j = 1; j < nk; ++j)
        for (int64_t hl = 0; hl < gv.group; ++hl)
          std::fill_n(St + j * R + hl * nq, std::min(j, nq), T(-INFINITY));
    std::copy_n(St, R, alpha);
    for (int64_t j = 1; j < nk; ++j) {
      const T* s = St + j * R;
#pragma omp simd
      for (int64_t r = 0; r < R; ++r) alpha[r] = s[r] > alpha[r] ? s[r] : alpha[r];
    }
    // Key j0 is visible to every row, so the block's max is finite. When the max grows, what was
    // summed and accumulated so far was relative to the old one: both are rescaled.
    if (j0 == 0) {
      std::copy_n(alpha, R, mx);
    } else {
#pragma omp simd
      for (int64_t r = 0; r < R; ++r) {
        const T m = alpha[r] > mx[r] ? alpha[r] : mx[r];
        alpha[r] = vexp(mx[r] - m);
        mx[r] = m;
        sum[r] *= static_cast<double>(alpha[r]);
      }
      for (int64_t r = 0; r < R; ++r) {
        T* a = acc + r * hd;
        const T f = alpha[r];
#pragma omp simd
        for (int64_t c = 0; c < hd; ++c) a[c] *= f;
      }
    }
    for (int64_t j = 0; j < nk; ++j) {
      T* p = St + j * R;
#pragma omp simd
      for (int64_t r = 0; r < R; ++r) p[r] = vexp(p[r] - mx[r]);
    }
    if (diagonal)  // vexp clamps: exp(−∞) would be 1e−38, not 0
      for (int64_t j = 1; j < nk; ++j)
        for (int64_t hl = 0; hl < gv.group; ++hl)
          std::fill_n(St + j * R + hl * nq, std::min(j, nq), T(0));
    // Σ_j in fp64, in key order, each row's lane its own sum.
    for (int64_t j = 0; j < nk; ++j) {
      const T* p = St + j * R;
#pragma omp simd
      for (int64_t r = 0; r < R; ++r) sum[r] += static_cast<double>(p[r]);
    }
    // acc(R, hd) += P(R, nk) · v(nk, hd), P read through Sᵀ
    block_gemm(Accumulate::Yes, R, hd, nk, T(1), St, 1, R, gv.krow(v, j0), gv.ldk, acc, hd);
  }

  for (int64_t hl = 0; hl < gv.group; ++hl) {
    T* st = stats + (gv.b * d.n_head + gv.head(hl)) * d.T * 2;  // (T, 2)
    for (int64_t tl = 0; tl < nq; ++tl) {
      const int64_t r = hl * nq + tl;
      const auto inv = static_cast<T>(1.0 / sum[r]);
      const T* a = acc + r * hd;
      T* o = gv.qrow(out, i0 + tl, hl);
#pragma omp simd
      for (int64_t c = 0; c < hd; ++c) o[c] = a[c] * inv;
      st[2 * (i0 + tl)] = mx[r];
      st[2 * (i0 + tl) + 1] = inv;
    }
  }
}

// The backward of one (b, kv group) is cut in two parts at query block `split` (backward_split):
// part 0 takes the query blocks before it, part 1 the rest. Each writes the dq rows of its blocks;
// part 0 owns the dk, dv rows [0, cut) (the only keys its blocks see), part 1 the rows [cut, T)
// and puts its terms for keys before `cut` into `low` (dk then dv, (cut, hd) each), which
// backward_merge adds after both parts are done: the same sums in the same order whatever thread
// runs which part.
struct BackwardPart {
  int64_t index;                   // 0 or 1
  int64_t first_block, end_block;  // query blocks [first, end) of kAttnBlock positions
  int64_t cut;                     // key rows before it go to `low` (part 1) or are owned (part 0)
};

// Causal work of query block i grows as i + 1: the first nb/√2 blocks hold about half of it.
inline int64_t backward_split(int64_t L) {
  const int64_t nb = (L + kB - 1) / kB;
  return std::min(nb, static_cast<int64_t>(std::lround(static_cast<double>(nb) / std::sqrt(2.0))));
}

template <class T>
void backward_part(T* dq, T* dk, T* dv, T* low, T* work, const T* dout, const T* stats,
                   const T* q, const T* k, const T* v, int64_t L, const GroupView<T>& gv,
                   const BackwardPart& part, T scale) {
  const AttnDims& d = gv.d;
  const int64_t hd = d.head_dim;
  const int64_t cut = std::min(d.T, part.cut);
  const bool first = part.index == 0;
  // Owned dk, dv rows start at 0; part 1's terms for keys before the cut start at 0 in `low`.
  for (int64_t t = first ? 0 : cut; t < (first ? cut : d.T); ++t) {
    std::memset(gv.krow(dk, t), 0, sizeof(T) * hd);
    std::memset(gv.krow(dv, t), 0, sizeof(T) * hd);
  }
  T* low_dk = low;            // (cut, hd)
  T* low_dv = low + d.T * hd;  // (cut, hd)
  if (!first) std::fill(low, low + 2 * d.T * hd, T(0));
  if (!first)
    for (int64_t hl = 0; hl < gv.group; ++hl)
      for (int64_t t = L; t < d.T; ++t) std::memset(gv.qrow(dq, t, hl), 0, sizeof(T) * hd);
  // Where the terms for keys [j0, j0 + kB) go, and their row stride.
  auto key_rows = [&](T* out, T* low_out, int64_t j0) {
    return !first && j0 < cut ? std::pair<T*, int64_t>{low_out + j0 * hd, hd}
                              : std::pair<T*, int64_t>{gv.krow(out, j0), gv.ldk};
  };

  // As in the forward, scores and probabilities are kept transposed (keys by rows), so that the
  // per-row statistics and D run element-wise down columns.
  const int64_t Rmax = gv.group * kB;
  double* D = carve_doubles(work, Rmax);  // (R) Σ_j P·dP per row
  T* mrow = work + 2 * Rmax;              // (R) the stats' max per row
  T* irow = mrow + Rmax;                  // (R) the stats' 1/Σ per row
  T* dt = irow + Rmax;                    // (R) D rounded
  T* qp = dt + Rmax;                      // (R, hd)
  T* qt = qp + Rmax * hd;                 // (hd, R)
  T* dop = qt + Rmax * hd;                // (R, hd)
  T* dot = dop + Rmax * hd;               // (hd, R)
  T* dqa = dot + Rmax * hd;               // (R, hd)
  T* Pt = dqa + Rmax * hd;                // (T, R): Pᵀ of the block's rows, keys < its end
  T* dPt = Pt + Rmax * d.T;               // (T, R): dPᵀ, then dSᵀ in place

  for (int64_t i0 = part.first_block * kB; i0 < std::min(L, part.end_block * kB); i0 += kB) {
    const int64_t e = std::min(L, i0 + kB), nq = e - i0, R = gv.group * nq;
    gv.pack_rows(qp, q, i0, nq);
    gv.pack_rows(dop, dout, i0, nq);
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t c = 0; c < hd; ++c) {
        qt[c * R + r] = qp[r * hd + c];
        dot[c * R + r] = dop[r * hd + c];
      }
      const T* st = stats + ((gv.b * d.n_head + gv.head(r / nq)) * d.T + i0 + r % nq) * 2;
      mrow[r] = st[0];
      irow[r] = st[1];
      D[r] = 0;
    }
    // In the forward pass this was: P = exp(S − m)·r, out = P · v.
    for (int64_t j0 = 0; j0 < e; j0 += kB) {
      const int64_t nk = std::min(e, j0 + kB) - j0;
      T* Ptj = Pt + j0 * R;    // (nk, R)
      T* dPtj = dPt + j0 * R;  // (nk, R)
      // Sᵀ(nk, R) = scale · k(nk, hd) · qᵀ(hd, R);  dPᵀ(nk, R) = v(nk, hd) · dOᵀ(hd, R)
      block_gemm(Accumulate::No, nk, R, hd, scale, gv.krow(k, j0), gv.ldk, 1, qt, R, Ptj, R);
      block_gemm(Accumulate::No, nk, R, hd, T(1), gv.krow(v, j0), gv.ldk, 1, dot, R, dPtj, R);
      for (int64_t j = 0; j < nk; ++j) {
        T* p = Ptj + j * R;
#pragma omp simd
        for (int64_t r = 0; r < R; ++r) p[r] = vexp(p[r] - mrow[r]) * irow[r];
      }
      if (j0 == i0)  // the diagonal block: key j0 + j is after rows at positions i0 + tl < j0 + j
        for (int64_t j = 1; j < nk; ++j)
          for (int64_t hl = 0; hl < gv.group; ++hl)
            std::fill_n(Ptj + j * R + hl * nq, std::min(j, nq), T(0));
      for (int64_t j = 0; j < nk; ++j) {
        const T* p = Ptj + j * R;
        const T* dp = dPtj + j * R;
#pragma omp simd
        for (int64_t r = 0; r < R; ++r) D[r] += static_cast<double>(dp[r]) * p[r];
      }
      // dv(nk, hd) += Pᵀ(nk, R) · dO(R, hd)
      const auto [dvj, lddv] = key_rows(dv, low_dv, j0);
      block_gemm(Accumulate::Yes, nk, hd, R, T(1), Ptj, R, 1, dop, hd, dvj, lddv);
    }
    for (int64_t r = 0; r < R; ++r) dt[r] = static_cast<T>(D[r]);
    // In the forward pass this was: P = softmax(S); dS = P ⊙ (dP − D), times scale.
    // S = scale · q kᵀ: dq(R, hd) = dS(R, ·) · k(·, hd);  dk(nk, hd) += dSᵀ(nk, R) · q(R, hd)
    for (int64_t j0 = 0; j0 < e; j0 += kB) {
      const int64_t nk = std::min(e, j0 + kB) - j0;
      T* dStj = dPt + j0 * R;  // (nk, R)
      for (int64_t j = 0; j < nk; ++j) {
        const T* p = Pt + (j0 + j) * R;
        T* ds = dStj + j * R;
#pragma omp simd
        for (int64_t r = 0; r < R; ++r) ds[r] = p[r] * (ds[r] - dt[r]) * scale;
      }
      block_gemm(j0 == 0 ? Accumulate::No : Accumulate::Yes, R, hd, nk, T(1), dStj, 1, R,
                 gv.krow(k, j0), gv.ldk, dqa, hd);
      const auto [dkj, lddk] = key_rows(dk, low_dk, j0);
      block_gemm(Accumulate::Yes, nk, hd, R, T(1), dStj, R, 1, qp, hd, dkj, lddk);
    }
    for (int64_t hl = 0; hl < gv.group; ++hl) {
      for (int64_t tl = 0; tl < nq; ++tl) {
        const T* from = dqa + (hl * nq + tl) * hd;
        T* to = gv.qrow(dq, i0 + tl, hl);
#pragma omp simd
        for (int64_t c = 0; c < hd; ++c) to[c] = from[c];
      }
    }
  }
}

template <class T>
T inverse_sqrt(int64_t n) {
  return static_cast<T>(1.0 / std::sqrt(static_cast<double>(n)));
}

}  // namespace

template <class T>
void attention_forward(T* out, T* stats, T* work, const T* q, const T* k, const T* v,
                       const int32_t* lengths, const AttnDims& d) {
  const int64_t blocks = (d.T + kB - 1) / kB;
  const T scale = inverse_sqrt<T>(d.head_dim);
  // Later query blocks see more keys: they are handed out first.
#pragma omp parallel for collapse(3) schedule(dynamic)
  for (int64_t b = 0; b < d.B; ++b) {
    for (int64_t g = 0; g < d.n_kv; ++g) {
      for (int64_t ib = 0; ib < blocks; ++ib) {
        const GroupView<T> gv(d, b, g);
        forward_block(out, stats, thread_scratch(work, d), q, k, v, lengths[b], gv,
                      (blocks - 1 - ib) * kB, scale);
      }
    }
  }
}

template <class T>
void attention_backward(T* dq, T* dk, T* dv, T* work, const T* dout, const T* stats, const T* q,
                        const T* k, const T* v, const int32_t* lengths, const AttnDims& d) {
  const T scale = inverse_sqrt<T>(d.head_dim);
  // (b, kv group) pairs in waves; part 1's terms for keys before the cut, per pair of the wave:
  // (wave, 2, T, hd) at the scratch's start.
  const int64_t pairs = d.B * d.n_kv, wave = attention_wave_pairs(d, omp_get_max_threads());
  const int64_t low_elems = 2 * d.T * d.head_dim;
  T* scratch = work + wave * low_elems;
  // Two tasks per (b, kv head), about equal in work; the heads of a group accumulate into the
  // same dk, dv rows.
#pragma omp parallel
  for (int64_t first = 0; first < pairs; first += wave) {
    const int64_t n = std::min(wave, pairs - first);
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t p = 1; p >= 0; --p) {  // the part with the longer rows first
        const int64_t b = (first + i) / d.n_kv, g = (first + i) % d.n_kv;
        const GroupView<T> gv(d, b, g);
        const int64_t split = backward_split(lengths[b]);
        const BackwardPart part = p == 0 ? BackwardPart{0, 0, split, split * kB}
                                         : BackwardPart{1, split, d.T, split * kB};
        backward_part(dq, dk, dv, work + i * low_elems, thread_scratch(scratch, d), dout, stats,
                      q, k, v, lengths[b], gv, part, scale);
      }
    }
    // dk, dv rows before the cut: part 0's sums, then part 1's.
#pragma omp for
    for (int64_t i = 0; i < n; ++i) {
      const int64_t b = (first + i) / d.n_kv, g = (first + i) % d.n_kv;
      const GroupView<T> gv(d, b, g);
      const T* low = work + i * low_elems;  // (2, T, hd)
      const int64_t cut = std::min(d.T, backward_split(lengths[b]) * kB);
      for (int64_t t = 0; t < cut; ++t) {
        T* dkr = gv.krow(dk, t);
        T* dvr = gv.krow(dv, t);
        const T* lk = low + t * d.head_dim;
        const T* lv = low + (d.T + t) * d.head_dim;
#pragma omp simd
        for (int64_t c = 0; c < d.head_dim; ++c) {
          dkr[c] += lk[c];
          dvr[c] += lv[c];
        }
      }
    }
  }
}

template void attention_forward<float>(float*, float*, float*, const float*, const float*,
                                       const float*, const int32_t*, const AttnDims&);
template void attention_forward<double>(double*, double*, double*, const double*, const double*,
                                        const double*, const int32_t*, const AttnDims&);
template void attention_backward<float>(float*, float*, float*, float*, const float*, const float*,
                                        const float*, const float*, const float*, const int32_t*,
                                        const AttnDims&);
template void attention_backward<double>(double*, double*, double*, double*, const double*,
                                         const double*, const double*, const double*, const double*,
                                         const int32_t*, const AttnDims&);

}  // namespace lomo
