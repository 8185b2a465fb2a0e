#include "model/linear.h"

#include "ops/cpu/gemm.h"
#include "ops/cpu/gemm_bf16.h"

namespace lomo {

void linear_forward(float* Y, const float* X, Param& W, const Param* b, int64_t N,
                    WeightCache& wc) {
  const int64_t out = W.shape[0], in = W.shape[1];
  if (b != nullptr) {
#pragma omp parallel for
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t o = 0; o < out; ++o) Y[n * out + o] = b->f()[o];
    }
  }
  const float beta = b ? 1.0f : 0.0f;
  if (wc.bf16_gemm()) {
    uint16_t* x16 = wc.act16(0, N * in);  // (N, in)
    to_bf16(x16, X, N * in);
    gemm_bf16(Trans::No, Trans::Yes, N, out, in, 1.0f, x16, in, W.h(), in, beta, Y, out);
    return;
  }
  gemm(Trans::No, Trans::Yes, N, out, in, 1.0f, X, in, wc.view(W), in, beta, Y, out);
}

void linear_backward(float* dX, const float* dY, const float* X, Param& W, Param* b, int64_t N,
                     DxMode dx_mode, GradSink& sink, WeightCache& wc, WeightGrad weight_grad) {
  const int64_t out = W.shape[0], in = W.shape[1];
  const float dx_beta = dx_mode == DxMode::Accumulate ? 1.0f : 0.0f;
  LinearGradOperands ops{dY, X, nullptr, nullptr, N};
  float* w = nullptr;  // W's fp32 view, when the products are fp32
  // 1. dX(N, in) = dY(N, out) · W(out, in): reads W, so it comes before any update of W.
  if (wc.bf16_gemm()) {
    uint16_t* dy16 = wc.act16(0, N * out);  // (N, out)
    uint16_t* x16 = wc.act16(1, N * in);    // (N, in)
    to_bf16(dy16, dY, N * out);
    to_bf16(x16, X, N * in);
    gemm_bf16(Trans::No, Trans::No, N, in, out, 1.0f, dy16, out, W.h(), in, dx_beta, dX, in);
    ops.dY16 = dy16;
    ops.X16 = x16;
  } else {
    w = wc.view(W);  // (out, in)
    gemm(Trans::No, Trans::No, N, in, out, 1.0f, dY, out, w, in, dx_beta, dX, in);
  }
  // 2.–3. dW(out, in) = dYᵀ(out, N) · X(N, in), then W may change: either inside one GEMM
  // (the zero-buffer update, on W's fp32 view), or through the sink's buffer.
  if (weight_grad != WeightGrad::Consume || !sink.fused_linear_update(W, w, wc, ops)) {
    float* dW = sink.gradient_buffer(W);
    linear_weight_grad(ops, out, in, 1.0f, 0.0f, dW);
    if (weight_grad == WeightGrad::Consume) sink.consume(W, dW);
  }
  if (b != nullptr) {
    float* db = sink.gradient_buffer(*b);
#pragma omp parallel for
    for (int64_t o = 0; o < out; ++o) {
      double s = 0;
      for (int64_t n = 0; n < N; ++n) s += dY[n * out + o];
      db[o] = static_cast<float>(s);
    }
    sink.consume(*b, db);
  }
}

}  // namespace lomo
