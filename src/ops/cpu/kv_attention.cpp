#include "ops/cpu/kv_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/vexp.h"

namespace lomo {

template <class T>
void kv_attention_forward(T* out, T* work, const T* q, const T* k_cache, const T* v_cache,
                          const KvAttnDims& d) {
  LOMO_ASSERT(d.past >= 0 && d.Tq >= 1 && d.past + d.Tq <= d.capacity,
              "attention_cached: positions beyond the cache");
  LOMO_ASSERT(d.n_kv > 0 && d.n_head % d.n_kv == 0, "attention_cached: n_head % n_kv != 0");
  const int64_t group = d.n_head / d.n_kv;
  const int64_t ldq = d.n_head * d.head_dim, ldk = d.n_kv * d.head_dim;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(d.head_dim)));
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t b = 0; b < d.B; ++b) {
    for (int64_t h = 0; h < d.n_head; ++h) {
      const int64_t g = h / group;
      const T* qb = q + b * d.Tq * ldq + h * d.head_dim;              // (Tq, hd), stride ldq
      const T* kb = k_cache + b * d.capacity * ldk + g * d.head_dim;  // (past + Tq, hd), stride ldk
      const T* vb = v_cache + b * d.capacity * ldk + g * d.head_dim;
      T* ob = out + b * d.Tq * ldq + h * d.head_dim;              // (Tq, hd), stride ldq
      T* P = work + omp_get_thread_num() * kKvRows * d.capacity;  // (rows, S), stride S
      for (int64_t i0 = 0; i0 < d.Tq; i0 += kKvRows) {
        const int64_t i1 = std::min(d.Tq, i0 + kKvRows), rows = i1 - i0;
        const int64_t S = d.past + i1;  // keys the block's last row sees
        // P(rows, S) = scale · q(rows, hd) · k(S, hd)ᵀ
        gemm(Trans::No, Trans::Yes, rows, S, d.head_dim, scale, qb + i0 * ldq, ldq, kb, ldk, T(0),
             P, S);
        for (int64_t r = 0; r < rows; ++r) {
          T* row = P + r * S;
          const int64_t n = d.past + i0 + r + 1;  // row i0 + r sees keys [0, n)
          T mx = row[0];
#pragma omp simd reduction(max : mx)
          for (int64_t j = 1; j < n; ++j) mx = row[j] > mx ? row[j] : mx;
          double sum = 0;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j < n; ++j) {
            row[j] = vexp(row[j] - mx);
            sum += static_cast<double>(row[j]);
          }
          const auto inv = static_cast<T>(1.0 / sum);
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) row[j] *= inv;
          for (int64_t j = n; j < S; ++j) row[j] = 0;
        }
        // out(rows, hd) = P(rows, S) · v(S, hd)
        gemm(Trans::No, Trans::No, rows, d.head_dim, S, T(1), P, S, vb, ldk, T(0), ob + i0 * ldq,
             ldq);
      }
    }
  }
}

template void kv_attention_forward<float>(float*, float*, const float*, const float*, const float*,
                                          const KvAttnDims&);
template void kv_attention_forward<double>(double*, double*, const double*, const double*,
                                           const double*, const KvAttnDims&);

}  // namespace lomo
