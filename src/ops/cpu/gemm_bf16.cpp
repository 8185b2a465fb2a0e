#include "ops/cpu/gemm_bf16.h"

#include <algorithm>
#include <map>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/half.h"

namespace lomo {

namespace {

using dnnl::memory;

// A primitive's key: the shape, and which of the scalars it applies. alpha is a runtime output
// scale and beta is 0 or 1 (gemm_bf16 scales C first otherwise): LOMO's fused update changes
// both (−lr·c and 1 − lr·wd) at every step under a schedule, and a primitive made per value
// left one JIT kernel per value in oneDNN's global primitive cache (1024 entries): the process
// grew ~2.7 MiB per step, up to ~256 MiB (2026-12-02).
struct Shape {
  Trans ta, tb;
  int64_t M, N, K, lda, ldb, ldc;
  bool scaled;  // alpha ≠ 1
  bool sum;     // beta ≠ 0: C is added (after scaling by beta when beta ≠ 1)
  auto key() const { return std::tie(ta, tb, M, N, K, lda, ldb, ldc, scaled, sum); }
  bool operator<(const Shape& o) const { return key() < o.key(); }
};

struct Product {
  memory::desc a, b, c;
  dnnl::matmul mm;
};

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// op(X)(rows, cols) stored row-major with leading dimension ld, or transposed.
memory::desc operand(int64_t rows, int64_t cols, int64_t ld, Trans t, memory::data_type dt) {
  return t == Trans::No ? memory::desc({rows, cols}, dt, memory::dims{ld, 1})
                        : memory::desc({rows, cols}, dt, memory::dims{1, ld});
}

thread_local std::map<Shape, Product> cache;

Product& product_for(const Shape& s) {
  auto it = cache.find(s);
  if (it != cache.end()) return it->second;
  if (cache.size() > 256) cache.clear();
  Product p;
  p.a = operand(s.M, s.K, s.lda, s.ta, memory::data_type::bf16);
  p.b = operand(s.K, s.N, s.ldb, s.tb, memory::data_type::bf16);
  p.c = memory::desc({s.M, s.N}, memory::data_type::f32, memory::dims{s.ldc, 1});
  dnnl::primitive_attr attr;
  if (s.scaled) attr.set_output_scales(0, {DNNL_RUNTIME_F32_VAL});
  if (s.sum) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(p.a, p.b, p.c), attr, cpu_engine());
  p.mm = dnnl::matmul(pd);
  return cache.emplace(s, std::move(p)).first->second;
}

// Without a bf16 kernel: the bf16 operands widened to fp32 (exactly: a bf16 is an fp32 with the
// low 16 bits zero) a panel of K at a time, each panel through the fp32 GEMM. The products are the
// bf16 kernel's (a product of two bf16 values is exact in fp32); only the order of the sums
// differs. Scratch: (M + N) · Kb floats, at most about 16 MiB unless M + N is very large.
void gemm_bf16_widened(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha,
                       const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta,
                       float* C, int64_t ldc) {
  constexpr int64_t kScratchFloats = int64_t{1} << 22;
  const int64_t Kb = std::min(K, std::max<int64_t>(64, kScratchFloats / (M + N)));
  thread_local std::vector<float> a_scratch, b_scratch;
  a_scratch.resize(static_cast<size_t>(M * Kb));
  b_scratch.resize(static_cast<size_t>(Kb * N));
  // Plain pointers: inside the parallel loops a thread_local would name each thread's own copy.
  float* a = a_scratch.data();  // (M, kb) row-major
  float* b = b_scratch.data();  // (kb, N) row-major
  for (int64_t k0 = 0; k0 < K; k0 += Kb) {
    const int64_t kb = std::min(Kb, K - k0);
    // op(A)(i, k) = A[i·lda + k] (No) or A[k·lda + i] (Yes); op(B)(k, j) likewise.
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t k = 0; k < kb; ++k) {
        const uint16_t h = ta == Trans::No ? A[i * lda + k0 + k] : A[(k0 + k) * lda + i];
        a[i * kb + k] = bf16_to_f32(h);
      }
    }
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < kb; ++k) {
      for (int64_t j = 0; j < N; ++j) {
        const uint16_t h = tb == Trans::No ? B[(k0 + k) * ldb + j] : B[j * ldb + k0 + k];
        b[k * N + j] = bf16_to_f32(h);
      }
    }
    gemm(Trans::No, Trans::No, M, N, kb, alpha, a, kb, b, N, k0 == 0 ? beta : 1.0f,
         C, ldc);
  }
}

}  // namespace

size_t bf16_primitives_made() {
  return cache.size();
}

// Probed once: creating the primitive fails where oneDNN has no kernel for it.
bool bf16_matmul_available() {
  static const bool ok = [] {
    try {
      product_for({Trans::No, Trans::No, 1, 1, 1, 1, 1, 1, false, false});
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return ok;
}

void gemm_bf16(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A,
               int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // no product: C = beta·C, as gemm() does
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    }
    return;
  }
  if (!bf16_matmul_available()) {
    gemm_bf16_widened(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  try {
    if (beta != 0.0f && beta != 1.0f) {
      // C ← beta·C first, then C += alpha·op(A)·op(B): the primitive adds C unscaled.
#pragma omp parallel for
      for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) C[i * ldc + j] *= beta;
      }
    }
    Product& p = product_for({ta, tb, M, N, K, lda, ldb, ldc, alpha != 1.0f, beta != 0.0f});
    dnnl::stream s(cpu_engine());
    memory a(p.a, cpu_engine(), const_cast<uint16_t*>(A));  // read only
    memory b(p.b, cpu_engine(), const_cast<uint16_t*>(B));  // read only
    memory c(p.c, cpu_engine(), C);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}};
    float scale = alpha;  // (1) the runtime output scale
    if (alpha != 1.0f) {
      args.insert({DNNL_ARG_ATTR_OUTPUT_SCALES,
                   memory({{1}, memory::data_type::f32, memory::format_tag::x}, cpu_engine(),
                          &scale)});
    }
    p.mm.execute(s, args);
    s.wait();
  } catch (const dnnl::error& e) {
    throw Error("oneDNN bf16 matmul failed (" + std::string(e.what()) + ") for M=" +
                std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K));
  }
}

}  // namespace lomo
