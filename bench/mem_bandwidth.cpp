// The machine's memory bandwidth, the ceiling of token-by-token decoding (every weight is read
// once per token): best of `repeats` passes over buffers far larger than the caches, with all
// OpenMP threads (or OMP_NUM_THREADS), each thread on its own contiguous slice.
//   copy: b ← a (memcpy), counted as STREAM does: bytes read + bytes written;
//   read: Σ a (a vectorised reduction), bytes read.
// Prints one JSON object: {"threads", "bytes", "copy_GBps", "read_GBps"} (GB = 1e9 bytes).
//   usage: mem_bandwidth [MiB per buffer=512] [repeats=10]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

template <class F>
double best_seconds(int reps, F&& f) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 512;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 10;
  const size_t n = mib * (size_t{1} << 20) / sizeof(float);
  std::vector<float> a(n), b(n);
  // First touch by the threads that will read each slice.
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) {
    a[i] = static_cast<float>(i & 1023);
    b[i] = 0.0f;
  }
  const int threads = omp_get_max_threads();
  const double copy_s = best_seconds(reps, [&] {
#pragma omp parallel
    {
      const size_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const size_t lo = n * t / nt, hi = n * (t + 1) / nt;
      std::memcpy(b.data() + lo, a.data() + lo, (hi - lo) * sizeof(float));
    }
  });
  double sink = 0;
  // Sixteen independent partial sums per thread (one AVX-512 register's worth), so that the
  // loop is limited by memory, not by the latency of one dependent addition.
  const double read_s = best_seconds(reps, [&] {
    double total = 0;
#pragma omp parallel reduction(+ : total)
    {
      const size_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const size_t lo = n * t / nt / 16 * 16, hi = t + 1 == nt ? n : n * (t + 1) / nt / 16 * 16;
      float acc[16] = {};
      for (size_t i = lo; i + 16 <= hi; i += 16) {
#pragma omp simd
        for (int j = 0; j < 16; ++j) acc[j] += a[i + j];
      }
      for (float x : acc) total += x;
    }
    sink += total;
  });
  const double bytes = static_cast<double>(n * sizeof(float));
  std::printf(
      "{\"threads\": %d, \"bytes\": %.0f, \"copy_GBps\": %.2f, \"read_GBps\": %.2f, "
      "\"checksum\": %.1f}\n",
      threads, bytes, 2 * bytes / copy_s / 1e9, bytes / read_s / 1e9, sink > 0 ? 1.0 : 0.0);
  return 0;
}
