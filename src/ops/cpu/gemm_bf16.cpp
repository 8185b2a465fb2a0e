#include "ops/cpu/gemm_bf16.h"

#include <map>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>

#include "core/error.h"
#include "core/half.h"

namespace lomo {

namespace {

using dnnl::memory;

struct Shape {
  Trans ta, tb;
  int64_t M, N, K, lda, ldb, ldc;
  float alpha, beta;
  auto key() const { return std::tie(ta, tb, M, N, K, lda, ldb, ldc, alpha, beta); }
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

Product& product_for(const Shape& s) {
  // alpha and beta are part of the key: LOMO's fused update uses a new alpha (−lr) each step
  // under a schedule, which costs one primitive per distinct value; the cache is capped below.
  thread_local std::map<Shape, Product> cache;
  auto it = cache.find(s);
  if (it != cache.end()) return it->second;
  if (cache.size() > 256) cache.clear();
  Product p;
  p.a = operand(s.M, s.K, s.lda, s.ta, memory::data_type::bf16);
  p.b = operand(s.K, s.N, s.ldb, s.tb, memory::data_type::bf16);
  p.c = memory::desc({s.M, s.N}, memory::data_type::f32, memory::dims{s.ldc, 1});
  dnnl::primitive_attr attr;
  if (s.alpha != 1.0f) attr.set_output_scales(0, {s.alpha});
  if (s.beta != 0.0f) {
    dnnl::post_ops po;
    po.append_sum(s.beta);
    attr.set_post_ops(po);
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(p.a, p.b, p.c), attr, cpu_engine());
  p.mm = dnnl::matmul(pd);
  return cache.emplace(s, std::move(p)).first->second;
}

}  // namespace

void gemm_bf16(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A,
               int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // no product: C = beta·C, as gemm() does
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    }
    return;
  }
  try {
    Product& p = product_for({ta, tb, M, N, K, lda, ldb, ldc, alpha, beta});
    dnnl::stream s(cpu_engine());
    memory a(p.a, cpu_engine(), const_cast<uint16_t*>(A));  // read only
    memory b(p.b, cpu_engine(), const_cast<uint16_t*>(B));  // read only
    memory c(p.c, cpu_engine(), C);
    p.mm.execute(s, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    s.wait();
  } catch (const dnnl::error& e) {
    throw Error("oneDNN bf16 matmul failed (" + std::string(e.what()) + ") for M=" +
                std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K));
  }
}

}  // namespace lomo
