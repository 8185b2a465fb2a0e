#include "nan_backend.h"

#include <algorithm>
#include <limits>

namespace lomo::test {

void NanFillBackend::poison(float* x, int64_t n) {
  if (x == nullptr || n <= 0) return;
  std::fill(x, x + n, std::numeric_limits<float>::quiet_NaN());
  ++poisoned_;
}

void NanFillBackend::poison(double* x, int64_t n) {
  if (x == nullptr || n <= 0) return;
  std::fill(x, x + n, std::numeric_limits<double>::quiet_NaN());
  ++poisoned_;
}

void NanFillBackend::poison(uint16_t* x, int64_t n) {
  if (x == nullptr || n <= 0) return;
  std::fill(x, x + n, uint16_t{0x7fc0});  // bf16 quiet NaN
  ++poisoned_;
}

void NanFillBackend::matmul(const Matmul& m) {
  if (m.beta == 0.0f) {
    for (int64_t i = 0; i < m.M; ++i) poison(m.C + i * m.ldc, m.N);
  }
  CpuBackend::matmul(m);
}

void NanFillBackend::embedding_forward(float* out, const int32_t* ids, ParamView table,
                                       int64_t N) {
  poison(out, N * table.cols);
  CpuBackend::embedding_forward(out, ids, table, N);
}

void NanFillBackend::embedding_update(ParamView table, const float* dout, const int32_t* ids,
                                      int64_t N, int32_t* order, const SgdStep& s,
                                      const HeldRows& held) {
  // The order scratch holds nothing on entry: NaN bits read as token indices would fail loudly.
  poison(reinterpret_cast<float*>(order), N);
  CpuBackend::embedding_update(table, dout, ids, N, order, s, held);
}

void NanFillBackend::rmsnorm_forward(float* y, float* rstd, const float* x, const float* w,
                                     int64_t N, int64_t d, double eps) {
  poison(y, N * d);
  poison(rstd, N);
  CpuBackend::rmsnorm_forward(y, rstd, x, w, N, d, eps);
}

void NanFillBackend::rmsnorm_apply(float* y, const float* x, const float* rstd, const float* w,
                                   int64_t N, int64_t d) {
  poison(y, N * d);
  CpuBackend::rmsnorm_apply(y, x, rstd, w, N, d);
}

void NanFillBackend::rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x,
                                      const float* rstd, const float* w, int64_t N, int64_t d) {
  poison(dw, d);  // dx accumulates
  CpuBackend::rmsnorm_backward(dx, dw, dy, x, rstd, w, N, d);
}

void NanFillBackend::attention_forward(float* out, float* stats, float* work, const float* q,
                                       const float* k, const float* v, const int32_t* lengths,
                                       const AttnDims& dims) {
  poison(out, dims.B * dims.T * dims.n_head * dims.head_dim);
  poison(stats, attention_stats_elems(dims));
  poison(work, attention_workspace_elems(dims));
  CpuBackend::attention_forward(out, stats, work, q, k, v, lengths, dims);
}

void NanFillBackend::attention_backward(float* dq, float* dk, float* dv, float* work,
                                        const float* dout, const float* stats, const float* q,
                                        const float* k, const float* v, const int32_t* lengths,
                                        const AttnDims& dims) {
  const int64_t rows = dims.B * dims.T;
  poison(dq, rows * dims.n_head * dims.head_dim);
  poison(dk, rows * dims.n_kv * dims.head_dim);
  poison(dv, rows * dims.n_kv * dims.head_dim);
  poison(work, attention_workspace_elems(dims));
  CpuBackend::attention_backward(dq, dk, dv, work, dout, stats, q, k, v, lengths, dims);
}

void NanFillBackend::attention_cached(float* out, float* work, const float* q,
                                      const float* k_cache, const float* v_cache,
                                      const KvAttnDims& dims) {
  poison(out, dims.B * dims.Tq * dims.n_head * dims.head_dim);
  poison(work, attention_cached_workspace_elems(dims));
  CpuBackend::attention_cached(out, work, q, k_cache, v_cache, dims);
}

void NanFillBackend::swiglu_forward(float* m, const float* g, const float* u, int64_t n) {
  if (m != g && m != u) poison(m, n);
  CpuBackend::swiglu_forward(m, g, u, n);
}

void NanFillBackend::swiglu_backward(float* dg, float* du, const float* dm, const float* g,
                                     const float* u, int64_t n) {
  // The model differentiates in place (dg = g, du = u): only separate outputs can be poisoned.
  if (dg != g && dg != u && dg != dm) poison(dg, n);
  if (du != g && du != u && du != dm) poison(du, n);
  CpuBackend::swiglu_backward(dg, du, dm, g, u, n);
}

void NanFillBackend::bias_rows(float* Y, const float* b, int64_t N, int64_t out) {
  poison(Y, N * out);
  CpuBackend::bias_rows(Y, b, N, out);
}

void NanFillBackend::dropout(float* y, const float* x, int64_t n, float p, uint64_t key) {
  poison(y, n);
  CpuBackend::dropout(y, x, n, p, key);
}

void NanFillBackend::bias_grad(float* db, const float* dY, int64_t N, int64_t out) {
  poison(db, out);
  CpuBackend::bias_grad(db, dY, N, out);
}

double NanFillBackend::lm_head_loss(ParamView W, const LmHeadIo& io) {
  const int64_t V = W.rows, d = W.cols;
  poison(io.nll, io.N);
  poison(io.tile, io.tiles.tile_elems(V));
  poison(io.w_block, io.tiles.cols * d);
  poison(io.row_stats, 2 * io.N);
  poison(io.tile16, io.tiles.tile_elems(V));
  poison(io.dxn, io.N * d);
  poison(io.dW, V * d);
  return CpuBackend::lm_head_loss(W, io);
}

void NanFillBackend::to_f32(float* dst, ParamView src, int64_t begin, int64_t n) {
  poison(dst, n);
  CpuBackend::to_f32(dst, src, begin, n);
}

void NanFillBackend::to_bf16(uint16_t* dst, const float* src, int64_t n) {
  poison(dst, n);
  CpuBackend::to_bf16(dst, src, n);
}

void NanFillBackend::to_bf16_in_place(float* x, int64_t n) {
  CpuBackend::to_bf16_in_place(x, n);
  // The bytes past the codes are dead: whatever still reads x as fp32 meets NaN there.
  poison(reinterpret_cast<uint16_t*>(x) + n, n);
}

void NanFillBackend::store(ParamView p, const float* w32, const RoundingMode& r) {
  // A 16-bit parameter is rewritten whole from its fp32 values (which are elsewhere).
  if (p.dtype != StorageDtype::F32) poison(p.u16(), p.numel());
  CpuBackend::store(p, w32, r);
}

void NanFillBackend::fill_normal(float* x, int64_t n, uint64_t seed, uint64_t stream,
                                 double stddev, int64_t first) {
  poison(x, n);
  CpuBackend::fill_normal(x, n, seed, stream, stddev, first);
}

}  // namespace lomo::test
