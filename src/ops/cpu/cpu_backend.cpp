#include "ops/cpu/cpu_backend.h"

#include <omp.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "ops/cpu/attention.h"
#include "ops/cpu/convert.h"
#include "ops/cpu/elementwise.h"
#include "ops/cpu/embedding.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/gemm_bf16.h"
#include "ops/cpu/gemv.h"
#include "ops/cpu/kv_attention.h"
#include "ops/cpu/lm_head.h"
#include "ops/cpu/rmsnorm.h"
#include "ops/cpu/rope.h"
#include "ops/cpu/swiglu.h"
#include "ops/cpu/update.h"

namespace lomo {

CpuBackend::CpuBackend(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

std::string CpuBackend::name() const {
  return "cpu (oneDNN, " + std::to_string(threads()) + " threads)";
}

int CpuBackend::threads() const {
  return omp_get_max_threads();
}

void CpuBackend::copy_to_device(void* dst, const void* host_src, size_t bytes) {
  if (bytes) std::memcpy(dst, host_src, bytes);
}

void CpuBackend::copy_to_host(void* host_dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(host_dst, src, bytes);
}

void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

void CpuBackend::fill(float* x, float value, int64_t n) {
  lomo::fill(x, value, n);
}

void CpuBackend::matmul(const Matmul& m) {
  if (m.M == 0 || m.N == 0) return;
  if (m.K == 0) {  // no product: C = beta·C, and beta = 0 overwrites (a NaN in C included)
    for (int64_t i = 0; i < m.M; ++i) {
      float* c = m.C + i * m.ldc;
      for (int64_t j = 0; j < m.N; ++j) c[j] = m.beta == 0.0f ? 0.0f : m.beta * c[j];
    }
    return;
  }
  const bool f32 = m.A.dtype == StorageDtype::F32 && m.B.dtype == StorageDtype::F32;
  const bool bf16 = m.A.dtype == StorageDtype::BF16 && m.B.dtype == StorageDtype::BF16;
  // One row times a matrix stored (N, K): token-by-token decoding's products (ops/cpu/gemv.h).
  const bool row_times_wt = m.M == 1 && m.ta == Trans::No && m.tb == Trans::Yes;
  if (m.precision == Precision::F32) {
    LOMO_ASSERT(f32, "an fp32 product needs fp32 operands");
    if (row_times_wt) {
      gemv_f32(m.N, m.K, m.alpha, static_cast<const float*>(m.A.data),
               static_cast<const float*>(m.B.data), m.B.ld, m.beta, m.C);
      return;
    }
    gemm(m.ta, m.tb, m.M, m.N, m.K, m.alpha, static_cast<const float*>(m.A.data), m.A.ld,
         static_cast<const float*>(m.B.data), m.B.ld, m.beta, m.C, m.ldc);
  } else {
    LOMO_ASSERT(bf16, "a bf16 product needs bf16 operands");
    if (row_times_wt) {
      gemv_bf16(m.N, m.K, m.alpha, static_cast<const uint16_t*>(m.A.data),
                static_cast<const uint16_t*>(m.B.data), m.B.ld, m.beta, m.C);
      return;
    }
    gemm_bf16(m.ta, m.tb, m.M, m.N, m.K, m.alpha, static_cast<const uint16_t*>(m.A.data), m.A.ld,
              static_cast<const uint16_t*>(m.B.data), m.B.ld, m.beta, m.C, m.ldc);
  }
}

void CpuBackend::embedding_forward(float* out, const int32_t* ids, ParamView table, int64_t N) {
  if (table.dtype == StorageDtype::F32) {
    lomo::embedding_forward(out, ids, static_cast<const float*>(table.f32()), N, table.cols);
  } else {
    embedding_forward_bf16(out, ids, table.u16(), N, table.cols, table.dtype == StorageDtype::F16);
  }
}

void CpuBackend::embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N,
                                    int64_t d) {
  lomo::embedding_backward(dtable, dout, ids, N, d);
}

void CpuBackend::embedding_update(ParamView table, const float* dout, const int32_t* ids,
                                  int64_t N, int32_t* order, const SgdStep& s,
                                  const HeldRows& held) {
  lomo::embedding_update(table, dout, ids, N, order, s, held);
}

void CpuBackend::rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t N,
                                 int64_t d, double eps) {
  lomo::rmsnorm_forward(y, rstd, x, w, N, d, eps);
}

void CpuBackend::rmsnorm_apply(float* y, const float* x, const float* rstd, const float* w,
                               int64_t N, int64_t d) {
  lomo::rmsnorm_apply(y, x, rstd, w, N, d);
}

void CpuBackend::rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x,
                                  const float* rstd, const float* w, int64_t N, int64_t d) {
  lomo::rmsnorm_backward(dx, dw, dy, x, rstd, w, N, d);
}

void CpuBackend::rope_forward(float* x, const RopeTable& table, int64_t B, int64_t T,
                              int64_t n_heads, int64_t head_dim) {
  lomo::rope_forward(x, table, B, T, n_heads, head_dim);
}

void CpuBackend::rope_backward(float* dx, const RopeTable& table, int64_t B, int64_t T,
                               int64_t n_heads, int64_t head_dim) {
  lomo::rope_backward(dx, table, B, T, n_heads, head_dim);
}

int64_t CpuBackend::attention_workspace_elems(const AttnDims& dims) const {
  return attention_work_elems(dims, threads());
}

void CpuBackend::attention_forward(float* out, float* stats, float* work, const float* q,
                                   const float* k, const float* v, const int32_t* lengths,
                                   const AttnDims& dims) {
  lomo::attention_forward(out, stats, work, q, k, v, lengths, dims);
}

void CpuBackend::attention_backward(float* dq, float* dk, float* dv, float* work, const float* dout,
                                    const float* stats, const float* q, const float* k,
                                    const float* v, const int32_t* lengths, const AttnDims& dims) {
  lomo::attention_backward(dq, dk, dv, work, dout, stats, q, k, v, lengths, dims);
}

void CpuBackend::rope_forward_at(float* x, const RopeTable& table, int64_t pos0, int64_t B,
                                 int64_t T, int64_t n_heads, int64_t head_dim) {
  lomo::rope_forward_at(x, table, pos0, B, T, n_heads, head_dim);
}

int64_t CpuBackend::attention_cached_workspace_elems(const KvAttnDims& dims) const {
  return kv_attention_work_elems(dims, threads());
}

void CpuBackend::attention_cached(float* out, float* work, const float* q, const float* k_cache,
                                  const float* v_cache, const KvAttnDims& dims) {
  kv_attention_forward(out, work, q, k_cache, v_cache, dims);
}

void CpuBackend::swiglu_forward(float* m, const float* g, const float* u, int64_t n) {
  lomo::swiglu_forward(m, g, u, n);
}

void CpuBackend::swiglu_backward(float* dg, float* du, const float* dm, const float* g,
                                 const float* u, int64_t n) {
  lomo::swiglu_backward(dg, du, dm, g, u, n);
}

void CpuBackend::add(float* y, const float* x, int64_t n) {
  add_inplace(y, x, n);
}

void CpuBackend::dropout(float* y, const float* x, int64_t n, float p, uint64_t key) {
  dropout_rows(y, x, n, p, 1.0f, 0.0f, key);
}

void CpuBackend::dropout_add(float* y, const float* x, int64_t n, float p, float alpha,
                             uint64_t key) {
  dropout_rows(y, x, n, p, alpha, 1.0f, key);
}

void CpuBackend::bias_rows(float* Y, const float* b, int64_t N, int64_t out) {
  lomo::bias_rows(Y, b, N, out);
}

void CpuBackend::bias_grad(float* db, const float* dY, int64_t N, int64_t out) {
  lomo::bias_grad(db, dY, N, out);
}

double CpuBackend::lm_head_loss(ParamView W, const LmHeadIo& io) {
  return lomo::lm_head_loss(W, io);
}

void CpuBackend::to_f32(float* dst, ParamView src, int64_t begin, int64_t n) {
  lomo::to_f32(dst, src, begin, n);
}

void CpuBackend::to_bf16(uint16_t* dst, const float* src, int64_t n) {
  lomo::to_bf16(dst, src, n);
}

void CpuBackend::to_bf16_in_place(float* x, int64_t n) {
  lomo::to_bf16_in_place(x, n);
}

void CpuBackend::store(ParamView p, const float* w32, const RoundingMode& r) {
  store_rounded(p, w32, r);
}

void CpuBackend::fill_normal(float* x, int64_t n, uint64_t seed, uint64_t stream, double stddev,
                             int64_t first) {
  lomo::fill_normal(x, n, seed, stream, stddev, first);
}

void CpuBackend::clip_by_value(float* g, int64_t n, float v) {
  lomo::clip_by_value(g, n, v);
}

bool CpuBackend::all_finite(const float* g, int64_t n) {
  return lomo::all_finite(g, n);
}

bool CpuBackend::any_beyond(const float* g, int64_t n, float limit) {
  return lomo::any_beyond(g, n, limit);
}

double CpuBackend::sum_squares(const float* g, int64_t n) {
  return lomo::sum_squares(g, n);
}

void CpuBackend::check_gradient(float* g, int64_t n, float clip, float limit,
                                GradientCheck* out) {
  out->beyond = std::isfinite(limit) ? static_cast<int32_t>(lomo::any_beyond(g, n, limit)) : 0;
  lomo::clip_by_value(g, n, clip);
  out->sum_squares = lomo::sum_squares(g, n);
  out->unused = 0;
}

void CpuBackend::sgd_update(ParamView p, const float* g, const SgdStep& s) {
  lomo::sgd_update(p, g, s);
}

void CpuBackend::adalomo_update(ParamView p, float* g, float* row, float* col,
                                const AdaLomoStep& s) {
  lomo::adalomo_update(p, g, row, col, s);
}

void CpuBackend::adamw_update(ParamView p, const float* g, float* m, float* v, const AdamWStep& s) {
  lomo::adamw_update(p, g, m, v, s);
}

}  // namespace lomo
