#include "ops/cpu/embedding.h"

#include <cstring>

#include "core/half.h"

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

template void embedding_forward<float>(float*, const int32_t*, const float*, int64_t, int64_t);
template void embedding_forward<double>(double*, const int32_t*, const double*, int64_t, int64_t);
template void embedding_backward<float>(float*, const float*, const int32_t*, int64_t, int64_t);
template void embedding_backward<double>(double*, const double*, const int32_t*, int64_t, int64_t);

}  // namespace lomo
