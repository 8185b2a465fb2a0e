#include "model/lm_head.h"

#include <algorithm>

#include "ops/cpu/cross_entropy.h"
#include "ops/cpu/gemm.h"

namespace lomo {

int64_t lm_head_chunk_rows(int64_t V, int64_t N) {
  const int64_t rows = std::max<int64_t>(16, (int64_t{4} << 20) / std::max<int64_t>(1, V));
  return std::max<int64_t>(1, std::min(rows, N));
}

double lm_head_cross_entropy(Param& W, const LmHeadIo& io, WeightCache& wc) {
  const int64_t V = W.shape[0], d = W.shape[1];
  const bool train = io.dxn != nullptr;
  if (io.logits_out) io.logits_out->resize(static_cast<size_t>(io.N * V));
  const float* w = wc.view(W);  // (V, d) fp32
  double sum = 0;
  for (int64_t r0 = 0; r0 < io.N; r0 += io.chunk_rows) {
    const int64_t C = std::min(io.chunk_rows, io.N - r0);
    float* logits = io.chunk;  // (C, V)
    gemm(Trans::No, Trans::Yes, C, V, d, 1.0f, io.xn + r0 * d, d, w, d, 0.0f, logits, V);
    if (io.logits_out) std::copy(logits, logits + C * V, io.logits_out->data() + r0 * V);
    cross_entropy_forward(io.nll + r0, logits, io.targets + r0, C, V);
    for (int64_t i = 0; i < C; ++i) sum += io.nll[r0 + i];
    if (!train) continue;
    // In the forward pass this was: nll = cross_entropy(logits), logits = xn · Wᵀ.
    cross_entropy_backward(logits, logits, io.targets + r0, C, V, io.grad_scale);
    // dxn_c(C, d) = dlogits(C, V) · W(V, d)
    gemm(Trans::No, Trans::No, C, d, V, 1.0f, logits, V, w, d, 0.0f, io.dxn + r0 * d, d);
    // dW(V, d) (+)= dlogitsᵀ(V, C) · xn_c(C, d)
    const float beta = (r0 > 0 || io.accumulate_dw) ? 1.0f : 0.0f;
    gemm(Trans::Yes, Trans::No, V, d, C, 1.0f, logits, V, io.xn + r0 * d, d, beta, io.dW, d);
  }
  return sum;
}

}  // namespace lomo
