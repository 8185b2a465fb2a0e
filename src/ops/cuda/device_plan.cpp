#include "ops/cuda/device_plan.h"

#include <algorithm>

namespace lomo::cuda {

bool cudnn_sdpa_supported(const AttnDims& d, int sm) {
  if (sm < 80) return false;
  if (d.B < 1 || d.T < 2 || d.n_head < 1 || d.n_kv < 1 || d.head_dim < 1) return false;
  if (d.n_head % d.n_kv != 0) return false;
  return d.head_dim % 16 == 0 && d.head_dim <= 128;
}

size_t cudnn_sdpa_workspace_cap(const AttnDims& d) {
  const auto n = [](int64_t x) { return static_cast<size_t>(x); };
  const size_t rows = n(d.B * d.n_head * d.T);                 // query rows (B, n_head, T)
  const size_t dq_accum = 4 * rows * n(d.head_dim);            // fp32 (B, n_head, T, hd)
  const size_t row_sums = 4 * rows;                            // fp32 (B, n_head, T)
  const size_t gqa_partials = d.n_kv < d.n_head ? 2 * 2 * rows * n(d.head_dim) : 0;  // bf16 dK, dV
  const auto up = [&](int64_t x, int64_t m) { return n((x + m - 1) / m * m); };
  // bf16 (B, n_head, T↑64, T↑128): the sm_90 deterministic backward's dP
  const size_t dp_scores = 2 * n(d.B * d.n_head) * up(d.T, 64) * up(d.T, 128);
  return dq_accum + row_sums + gqa_partials + dp_scores + (size_t{1} << 20);
}

SdpaLayout::SdpaLayout(const AttnDims& d) {
  const auto bf16 = [](int64_t n) { return sizeof(uint16_t) * static_cast<size_t>(n); };
  const int64_t qn = d.B * d.T * d.n_head * d.head_dim, kn = d.B * d.T * d.n_kv * d.head_dim;
  size_t at = 0;
  const auto take = [&](size_t bytes) {
    const size_t start = at;
    at += (bytes + 255) / 256 * 256;
    return start;
  };
  q = take(bf16(qn));
  k = take(bf16(kn));
  v = take(bf16(kn));
  o = take(bf16(qn));
  seq = take(sizeof(int32_t) * static_cast<size_t>(d.B));
  dout = take(bf16(qn));
  dq = take(bf16(qn));
  dk = take(bf16(kn));
  dv = take(bf16(kn));
  stats = take(sizeof(float) * static_cast<size_t>(d.B * d.n_head * d.T));
  cudnn_bytes = cudnn_sdpa_workspace_cap(d);
  cudnn = take(cudnn_bytes);
  total = at;
}

int64_t attention_workspace_elems(const AttnDims& d, bool cudnn) {
  int64_t elems = d.B * d.n_head * d.T;  // D of every query row, between the backward kernels
  if (cudnn && cudnn_sdpa_supported(d, 80)) {
    // + 256 bytes: the parts are aligned from the first 256-byte boundary of the caller's
    // workspace, which may start anywhere (cuDNN's TMA loads want aligned tensors).
    elems = std::max(elems, static_cast<int64_t>((SdpaLayout(d).total + 256 + 3) / 4));
  }
  return elems;
}

bool cuda_backend_built() {
#if defined(LOMO_HAVE_CUDA)
  return true;
#else
  return false;
#endif
}

bool cudnn_attention_built() {
#if defined(LOMO_HAVE_CUDNN_FRONTEND)
  return true;
#else
  return false;
#endif
}

}  // namespace lomo::cuda
