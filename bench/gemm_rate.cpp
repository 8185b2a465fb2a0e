// The machine's GEMM ceiling through our own gemm() wrapper (the library the engine uses):
// median GFLOP/s of C = A·B for large square fp32 matrices. Used by bench/train_cpu.sh to put
// the training throughput in proportion.
//   usage: gemm_rate [size=2048] [repeats=7]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ops/cpu/gemm.h"

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atol(argv[1]) : 2048;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 7;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  std::vector<double> rates;
  for (int r = 0; r < reps + 1; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    lomo::gemm(lomo::Trans::No, lomo::Trans::No, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
               c.data(), n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) rates.push_back(2.0 * n * n * n / s / 1e9);  // first call warms up
  }
  std::sort(rates.begin(), rates.end());
  std::printf(
      "{\"gemm\": \"oneDNN sgemm\", \"size\": %lld, \"threads\": %d, \"gflops_median\": %.1f}\n",
      static_cast<long long>(n), omp_get_max_threads(), rates[rates.size() / 2]);
  return 0;
}
