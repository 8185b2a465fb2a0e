#include "ops/cpu/embedding.h"

#include <algorithm>
#include <cstring>

#include "core/half.h"
#include "core/rounding.h"
#include "ops/element/param.h"
#include "ops/element/update.h"

namespace lomo {

template <class T>
void embedding_forward(T* out, const int32_t* ids, const T* table, int64_t N, int64_t d) {
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    if (ids[n] < 0) {
      std::memset(out + n * d, 0, sizeof(T) * d);
    } else {
      std::memcpy(out + n * d, table + static_cast<int64_t>(ids[n]) * d, sizeof(T) * d);
    }
  }
}

void embedding_forward_bf16(float* out, const int32_t* ids, const uint16_t* table, int64_t N, int64_t d, bool f16) {
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    if (ids[n] < 0) {
      std::memset(out + n * d, 0, sizeof(float) * d);
      continue;
    }
    const uint16_t* row = table + static_cast<int64_t>(ids[n]) * d;
    for (int64_t j = 0; j < d; ++j) out[n * d + j] = f16 ? f16_to_f32(row[j]) : bf16_to_f32(row[j]);
  }
}

template <class T>
void embedding_backward(T* dtable, const T* dout, const int32_t* ids, int64_t N, int64_t d) {
  // Serial over tokens: two tokens may share an id, and N·d is tiny next to the GEMMs.
  for (int64_t n = 0; n < N; ++n) {
    if (ids[n] < 0) continue;
    T* row = dtable + static_cast<int64_t>(ids[n]) * d;
    const T* g = dout + n * d;
    for (int64_t j = 0; j < d; ++j) row[j] += g[j];
  }
}

void embedding_update(ParamView table, const float* dout, const int32_t* ids, int64_t N,
                      int32_t* order, const SgdStep& s, const HeldRows& held) {
  const int64_t V = table.rows, d = table.cols;
  const float keep = s.keep, step = s.step;
  // order(M): the non-padding token indices, sorted by (id, index): each row's tokens are one
  // run, in the order embedding_backward adds them.
  int64_t M = 0;
  for (int64_t n = 0; n < N; ++n) {
    if (ids[n] >= 0) order[M++] = static_cast<int32_t>(n);
  }
  std::sort(order, order + M, [ids](int32_t a, int32_t b) {
    return ids[a] != ids[b] ? ids[a] < ids[b] : a < b;
  });
  const auto id_of = [&](int64_t k) { return ids[order[k]]; };
  // Rows with tokens: one task per run of equal ids.
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t k0 = 0; k0 < M; ++k0) {
    if (k0 > 0 && id_of(k0) == id_of(k0 - 1)) continue;  // not the start of a run
    int64_t k1 = k0 + 1;
    while (k1 < M && id_of(k1) == id_of(k0)) ++k1;
    const int32_t v = id_of(k0);
    const int64_t row = static_cast<int64_t>(v) * d;
    // The row's starting values: the table, or its held fp32 values (held(d)).
    const float* base = nullptr;
    if (held.n > 0) {
      const int32_t* h = std::lower_bound(held.rows, held.rows + held.n, v);
      if (h != held.rows + held.n && *h == v) base = held.values + (h - held.rows) * d;
    }
    constexpr int64_t kChunk = 64;
    for (int64_t j0 = 0; j0 < d; j0 += kChunk) {
      const int64_t w = std::min(kChunk, d - j0);
      float g[kChunk] = {};  // g_v(j0 … j0 + w)
      for (int64_t k = k0; k < k1; ++k) {
        const float* src = dout + static_cast<int64_t>(order[k]) * d + j0;
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) g[j] += src[j];
      }
      for (int64_t j = 0; j < w; ++j) {
        const int64_t i = row + j0 + j;
        const float p = base ? base[j0 + j] : param_load(table, i);
        param_store(table, i, element::sgd(p, g[j], keep, step), s.rounding);
      }
    }
  }
  if (keep == 1.0f) return;
  // Rows without tokens: their gradient is zero, so only the decay applies.
#pragma omp parallel for
  for (int64_t v = 0; v < V; ++v) {
    const int32_t* it = std::lower_bound(order, order + M, static_cast<int32_t>(v),
                                         [ids](int32_t n, int32_t row) { return ids[n] < row; });
    if (it != order + M && ids[*it] == v) continue;  // done above
    for (int64_t i = v * d; i < (v + 1) * d; ++i) {
      param_store(table, i, element::sgd(param_load(table, i), 0.0f, keep, step), s.rounding);
    }
  }
}

template void embedding_forward<float>(float*, const int32_t*, const float*, int64_t, int64_t);
template void embedding_forward<double>(double*, const int32_t*, const double*, int64_t, int64_t);
template void embedding_backward<float>(float*, const float*, const int32_t*, int64_t, int64_t);
template void embedding_backward<double>(double*, const double*, const int32_t*, int64_t, int64_t);

}  // namespace lomo
