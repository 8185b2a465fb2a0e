#include "ops/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/cpu/gemm.h"
#include "ops/cpu/vexp.h"

namespace lomo {

namespace {

// Causal products skip the upper triangle a block of query rows at a time: rows [i0, i1) see
// keys [0, i1) only, so every product below runs over P's block-lower-triangular part (about
// (1 + kRows/L)/2 of the full L×L work). Entries j ≥ i1 of a block's rows are never written nor
// read.
constexpr int64_t kRows = 64;

template <class F>
void for_row_blocks(int64_t L, F&& f) {
  for (int64_t i0 = 0; i0 < L; i0 += kRows) f(i0, std::min(L, i0 + kRows));
}

// One past the last key row i's block reaches: entries (i, block_end) of row i are zeroed.
inline int64_t block_end(int64_t i, int64_t L) { return std::min(L, (i / kRows + 1) * kRows); }

// P(L, L) with row stride Tn ← q(L, hd), k(L, hd): S = scale·q·kᵀ, then row i (keys j ≤ i)
// becomes exp(S − m_i)·r_i, and keys i < j < i1 of its block 0. Forward passes stats_out: m_i and
// r_i = 1/Σ_j exp(S − m_i) are computed and written (L, 2). Backward passes stats_in instead and
// reads them, which reproduces forward's P exactly.
template <class T>
void causal_probs(T* P, const T* qb, int64_t ldq, const T* kb, int64_t ldk, int64_t L, int64_t Tn,
                  int64_t hd, T scale, T* stats_out, const T* stats_in) {
  for_row_blocks(L, [&](int64_t i0, int64_t i1) {
    gemm(Trans::No, Trans::Yes, i1 - i0, i1, hd, scale, qb + i0 * ldq, ldq, kb, ldk, T(0),
         P + i0 * Tn, Tn);
  });
  for (int64_t i = 0; i < L; ++i) {
    T* row = P + i * Tn;
    // Both branches leave row[j] = vexp(S_ij − m) · r, the same two roundings.
    if (stats_out) {
      T mx = row[0];
#pragma omp simd reduction(max : mx)
      for (int64_t j = 1; j <= i; ++j) mx = row[j] > mx ? row[j] : mx;
      double sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j <= i; ++j) {
        row[j] = vexp(row[j] - mx);
        sum += static_cast<double>(row[j]);
      }
      const auto inv = static_cast<T>(1.0 / sum);
#pragma omp simd
      for (int64_t j = 0; j <= i; ++j) row[j] *= inv;
      stats_out[2 * i] = mx;
      stats_out[2 * i + 1] = inv;
    } else {
      const T mx = stats_in[2 * i], inv = stats_in[2 * i + 1];
#pragma omp simd
      for (int64_t j = 0; j <= i; ++j) row[j] = vexp(row[j] - mx) * inv;
    }
    for (int64_t j = i + 1, end = block_end(i, L); j < end; ++j) row[j] = 0;
  }
}

}  // namespace

template <class T>
void attention_forward(T* out, T* stats, T* work, const T* q, const T* k, const T* v,
                       const int32_t* lengths, const AttnDims& d) {
  const int64_t group = d.n_head / d.n_kv;
  const int64_t ldq = d.n_head * d.head_dim, ldk = d.n_kv * d.head_dim;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(d.head_dim)));
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t b = 0; b < d.B; ++b) {
    for (int64_t h = 0; h < d.n_head; ++h) {
      const int64_t L = lengths[b];
      const int64_t g = h / group;
      const T* qb = q + b * d.T * ldq + h * d.head_dim;  // (L, hd) with row stride ldq
      const T* kb = k + b * d.T * ldk + g * d.head_dim;  // (L, hd) with row stride ldk
      const T* vb = v + b * d.T * ldk + g * d.head_dim;
      T* ob = out + b * d.T * ldq + h * d.head_dim;
      T* st = stats + (b * d.n_head + h) * d.T * 2;       // (T, 2)
      T* P = work + omp_get_thread_num() * 2 * d.T * d.T;  // (L, L), row stride T
      causal_probs(P, qb, ldq, kb, ldk, L, d.T, d.head_dim, scale, st, static_cast<const T*>(nullptr));
      for (int64_t i = 2 * L; i < 2 * d.T; ++i) st[i] = 0;
      // out(L, hd) = P(L, L) · v(L, hd), by row blocks; padding rows zero.
      for_row_blocks(L, [&](int64_t i0, int64_t i1) {
        gemm(Trans::No, Trans::No, i1 - i0, d.head_dim, i1, T(1), P + i0 * d.T, d.T, vb, ldk, T(0),
             ob + i0 * ldq, ldq);
      });
      for (int64_t i = L; i < d.T; ++i) std::memset(ob + i * ldq, 0, sizeof(T) * d.head_dim);
    }
  }
}

template <class T>
void attention_backward(T* dq, T* dk, T* dv, T* work, const T* dout, const T* stats, const T* q,
                        const T* k, const T* v, const int32_t* lengths, const AttnDims& d) {
  const int64_t group = d.n_head / d.n_kv;
  const int64_t ldq = d.n_head * d.head_dim, ldk = d.n_kv * d.head_dim;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(d.head_dim)));
  // One task per (b, kv head): the heads of a group accumulate into the same dk, dv rows.
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t b = 0; b < d.B; ++b) {
    for (int64_t g = 0; g < d.n_kv; ++g) {
      const int64_t L = lengths[b];
      T* P = work + omp_get_thread_num() * 2 * d.T * d.T;  // (L, L), row stride T
      T* dS = P + d.T * d.T;                               // (L, L), row stride T
      const T* kb = k + b * d.T * ldk + g * d.head_dim;
      const T* vb = v + b * d.T * ldk + g * d.head_dim;
      T* dkb = dk + b * d.T * ldk + g * d.head_dim;
      T* dvb = dv + b * d.T * ldk + g * d.head_dim;
      for (int64_t i = 0; i < d.T; ++i) {
        std::memset(dkb + i * ldk, 0, sizeof(T) * d.head_dim);
        std::memset(dvb + i * ldk, 0, sizeof(T) * d.head_dim);
      }
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        const T* qb = q + b * d.T * ldq + h * d.head_dim;
        const T* dob = dout + b * d.T * ldq + h * d.head_dim;
        T* dqb = dq + b * d.T * ldq + h * d.head_dim;
        const T* st = stats + (b * d.n_head + h) * d.T * 2;  // (T, 2)
        causal_probs(P, qb, ldq, kb, ldk, L, d.T, d.head_dim, scale, static_cast<T*>(nullptr), st);
        // In the forward pass this was: out = P · v. Each product by row blocks of P:
        // dv(L, hd) += Pᵀ(L, L) · dO(L, hd);  dP(L, L) = dO(L, hd) · vᵀ
        for_row_blocks(L, [&](int64_t i0, int64_t i1) {
          gemm(Trans::Yes, Trans::No, i1, d.head_dim, i1 - i0, T(1), P + i0 * d.T, d.T,
               dob + i0 * ldq, ldq, T(1), dvb, ldk);
          gemm(Trans::No, Trans::Yes, i1 - i0, i1, d.head_dim, T(1), dob + i0 * ldq, ldq, vb, ldk,
               T(0), dS + i0 * d.T, d.T);
        });
        // In the forward pass this was: P = softmax(S); dS = P ⊙ (dP − Σ_j dP·P), times scale.
        for (int64_t i = 0; i < L; ++i) {
          const T* pr = P + i * d.T;
          T* r = dS + i * d.T;
          double dot = 0;
#pragma omp simd reduction(+ : dot)
          for (int64_t j = 0; j <= i; ++j) dot += static_cast<double>(r[j]) * pr[j];
          const T dt = static_cast<T>(dot);
#pragma omp simd
          for (int64_t j = 0; j <= i; ++j) r[j] = pr[j] * (r[j] - dt) * scale;
          for (int64_t j = i + 1, end = block_end(i, L); j < end; ++j) r[j] = 0;
        }
        // In the forward pass this was: S = scale · q kᵀ (scale folded into dS above).
        // dq(L, hd) = dS(L, L) · k(L, hd);  dk(L, hd) += dSᵀ(L, L) · q(L, hd)
        for_row_blocks(L, [&](int64_t i0, int64_t i1) {
          gemm(Trans::No, Trans::No, i1 - i0, d.head_dim, i1, T(1), dS + i0 * d.T, d.T, kb, ldk,
               T(0), dqb + i0 * ldq, ldq);
          gemm(Trans::Yes, Trans::No, i1, d.head_dim, i1 - i0, T(1), dS + i0 * d.T, d.T,
               qb + i0 * ldq, ldq, T(1), dkb, ldk);
        });
        for (int64_t i = L; i < d.T; ++i) std::memset(dqb + i * ldq, 0, sizeof(T) * d.head_dim);
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
