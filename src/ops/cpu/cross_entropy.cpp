#include "ops/cpu/cross_entropy.h"

#include <cmath>

namespace lomo {

namespace {

template <class T>
double logsumexp(const T* row, int64_t V) {
  T mx = row[0];
  for (int64_t j = 1; j < V; ++j) mx = row[j] > mx ? row[j] : mx;
  double sum = 0;
  for (int64_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(row[j] - mx));
  return static_cast<double>(mx) + std::log(sum);
}

}  // namespace

template <class T>
void cross_entropy_forward(T* nll, const T* logits, const int32_t* targets, int64_t N, int64_t V) {
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] < 0) {
      nll[n] = 0;
      continue;
    }
    const T* row = logits + n * V;
    nll[n] = static_cast<T>(logsumexp(row, V) - static_cast<double>(row[targets[n]]));
  }
}

template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const int32_t* targets, int64_t N,
                            int64_t V, T scale) {
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    const T* row = logits + n * V;
    T* drow = dlogits + n * V;
    if (targets[n] < 0) {
      for (int64_t j = 0; j < V; ++j) drow[j] = 0;
      continue;
    }
    const double lse = logsumexp(row, V);
    for (int64_t j = 0; j < V; ++j) {
      drow[j] = static_cast<T>(scale * std::exp(static_cast<double>(row[j]) - lse));
    }
    drow[targets[n]] -= scale;
  }
}

template void cross_entropy_forward<float>(float*, const float*, const int32_t*, int64_t, int64_t);
template void cross_entropy_forward<double>(double*, const double*, const int32_t*, int64_t,
                                            int64_t);
template void cross_entropy_backward<float>(float*, const float*, const int32_t*, int64_t, int64_t,
                                            float);
template void cross_entropy_backward<double>(double*, const double*, const int32_t*, int64_t,
                                             int64_t, double);

}  // namespace lomo
