#include "model/linear.h"

#include "ops/cpu/gemm.h"

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
  gemm(Trans::No, Trans::Yes, N, out, in, 1.0f, X, in, wc.view(W), in, b ? 1.0f : 0.0f, Y, out);
}

void linear_backward(float* dX, const float* dY, const float* X, Param& W, Param* b, int64_t N,
                     DxMode dx_mode, GradSink& sink, WeightCache& wc, WeightGrad weight_grad) {
  const int64_t out = W.shape[0], in = W.shape[1];
  // 1. dX(N, in) = dY(N, out) · W(out, in): reads W, so it comes before any update of W.
  float* w = wc.view(W);  // fp32 (out, in): W itself, or a converted copy
  gemm(Trans::No, Trans::No, N, in, out, 1.0f, dY, out, w, in,
       dx_mode == DxMode::Accumulate ? 1.0f : 0.0f, dX, in);
  // 2.–3. dW(out, in) = dYᵀ(out, N) · X(N, in), then W may change: either inside one GEMM
  // (the zero-buffer update), or through the sink's buffer.
  if (weight_grad != WeightGrad::Consume || !sink.fused_linear_update(W, w, dY, X, N)) {
    float* dW = sink.gradient_buffer(W);
    gemm(Trans::Yes, Trans::No, out, in, N, 1.0f, dY, out, X, in, 0.0f, dW, in);
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
