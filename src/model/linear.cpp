#include "model/linear.h"

namespace lomo {

void linear_forward(float* Y, const float* X, Param& W, const Param* b, int64_t N,
                    WeightCache& wc) {
  Backend& be = wc.backend();
  const int64_t out = W.shape[0], in = W.shape[1];
  if (b != nullptr) be.bias_rows(Y, b->f(), N, out);
  // Y(N, out) (+)= X(N, in) · W(out, in)ᵀ
  const MatRef x = wc.operand(X, N, in, 0);
  be.matmul({Trans::No, Trans::Yes, N, out, in, 1.0f, x, wc.weight(W), b ? 1.0f : 0.0f, Y, out,
             wc.precision()});
}

void linear_backward(float* dX, const float* dY, const float* X, Param& W, Param* b, int64_t N,
                     DxMode dx_mode, GradSink& sink, WeightCache& wc) {
  Backend& be = wc.backend();
  const int64_t out = W.shape[0], in = W.shape[1];
  const Precision prec = wc.precision();
  const MatRef dy = wc.operand(dY, N, out, 0);  // (N, out)
  const MatRef w = wc.weight(W);                // (out, in)
  // 1. dX(N, in) = dY(N, out) · W(out, in): reads W, so it comes before any update of W.
  be.matmul({Trans::No, Trans::No, N, in, out, 1.0f, dy, w,
             dx_mode == DxMode::Accumulate ? 1.0f : 0.0f, dX, in, prec});
  const MatRef x = wc.operand(X, N, in, 1);  // (N, in)
  // 2.–3. dW(out, in) = dYᵀ(out, N) · X(N, in), then W may change: either inside one GEMM on
  // W's fp32 values (the zero-buffer update), or through the sink's buffer.
  if (const auto u = sink.fused_linear_update(W)) {
    float* w32 = w.dtype == StorageDtype::F32 ? const_cast<float*>(static_cast<const float*>(w.data))
                                              : wc.view(W);  // (out, in)
    be.matmul({Trans::Yes, Trans::No, out, in, N, u->alpha, dy, x, u->beta, w32, in, prec});
    be.store(W.view(), w32, u->rounding);  // nothing to do for fp32, where w32 is W itself
  } else {
    float* dW = sink.gradient_buffer(W);  // (out, in)
    be.matmul({Trans::Yes, Trans::No, out, in, N, 1.0f, dy, x, 0.0f, dW, in, prec});
    sink.consume(W, dW);
  }
  if (b != nullptr) {
    float* db = sink.gradient_buffer(*b);  // (out)
    be.bias_grad(db, dY, N, out);
    sink.consume(*b, db);
  }
}

}  // namespace lomo
