// The machine's GEMM ceiling through oneDNN, the library the engine uses: median GFLOP/s of
// C = A·B for large square matrices. Used by bench/train_cpu.sh and bench/peer_cpu.sh to put
// the training throughput in proportion.
//   fp32: our own gemm() wrapper (oneDNN sgemm, what the engine calls);
//   bf16: oneDNN's matmul primitive with bf16 A and B and fp32 C (its AVX-512-BF16 kernel where
//         the CPU has one) — the fastest bf16 product available here; the engine does not use it.
//   usage: gemm_rate [size=2048] [repeats=7] [fp32|bf16]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <vector>

#include "ops/cpu/gemm.h"

namespace {

double median_gflops(int64_t n, int reps, const std::function<void()>& product) {
  std::vector<double> rates;
  for (int r = 0; r < reps + 1; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    product();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) rates.push_back(2.0 * n * n * n / s / 1e9);  // the first call warms up
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atol(argv[1]) : 2048;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 7;
  const std::string dtype = argc > 3 ? argv[3] : "fp32";
  double gflops = 0;
  const char* name = "";
  if (dtype == "fp32") {
    std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
    name = "oneDNN sgemm";
    gflops = median_gflops(n, reps, [&] {
      lomo::gemm(lomo::Trans::No, lomo::Trans::No, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
                 c.data(), n);
    });
  } else if (dtype == "bf16") {
    using dnnl::memory;
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    dnnl::stream s(eng);
    const memory::desc ad({n, n}, memory::data_type::bf16, memory::format_tag::ab);
    const memory::desc cd({n, n}, memory::data_type::f32, memory::format_tag::ab);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ad, ad, cd), eng);
    memory A(ad, eng), B(ad, eng), C(cd, eng);
    std::fill_n(static_cast<uint16_t*>(A.get_data_handle()), n * n, uint16_t{0x3f00});  // 0.5
    std::fill_n(static_cast<uint16_t*>(B.get_data_handle()), n * n, uint16_t{0x3e80});  // 0.25
    const dnnl::matmul mm(pd);
    name = "oneDNN matmul bf16";
    gflops = median_gflops(n, reps, [&] {
      mm.execute(s, {{DNNL_ARG_SRC, A}, {DNNL_ARG_WEIGHTS, B}, {DNNL_ARG_DST, C}});
      s.wait();
    });
  } else {
    std::fprintf(stderr, "gemm_rate: dtype \"%s\" is not fp32 or bf16\n", dtype.c_str());
    return 2;
  }
  std::printf(
      "{\"gemm\": \"%s\", \"dtype\": \"%s\", \"size\": %lld, \"threads\": %d, "
      "\"gflops_median\": %.1f}\n",
      name, dtype.c_str(), static_cast<long long>(n), omp_get_max_threads(), gflops);
  return 0;
}
