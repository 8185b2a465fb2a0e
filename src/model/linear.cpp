#include "model/linear.h"

namespace lomo {

void linear_forward(float* Y, const float* X, Param& W, const Param* b, int64_t N,
                    WeightCache& wc) {
  Backend& be = wc.backend();
  const int64_t out = W.shape[0], in = W.shape[1];
  if (b != nullptr) be.bias_rows(Y, b->f(), N, out);
  // Y(N, out) (+)= X(N, in) · W(out, in)ᵀ
  be.matmul({.ta = Trans::No,
             .tb = Trans::Yes,
             .M = N,
             .N = out,
             .K = in,
             .A = wc.operand(X, N, in, 0),
             .B = wc.weight(W).ref,
             .beta = b ? 1.0f : 0.0f,
             .C = Y,
             .ldc = out,
             .precision = wc.precision()});
}

void linear_backward(float* dX, const float* dY, const float* X, Param& W, Param* b, int64_t N,
                     DxMode dx_mode, GradSink& sink, WeightCache& wc) {
  Backend& be = wc.backend();
  const int64_t out = W.shape[0], in = W.shape[1];
  const MatRef dy = wc.operand(dY, N, out, 0);         // (N, out)
  const WeightCache::Operand w = wc.weight(W);         // (out, in)
  // 1. dX(N, in) = dY(N, out) · W(out, in): reads W, so it comes before any update of W.
  be.matmul({.ta = Trans::No,
             .tb = Trans::No,
             .M = N,
             .N = in,
             .K = out,
             .A = dy,
             .B = w.ref,
             .beta = dx_mode == DxMode::Accumulate ? 1.0f : 0.0f,
             .C = dX,
             .ldc = in,
             .precision = wc.precision()});
  const MatRef x = wc.operand(X, N, in, 1);  // (N, in)
  // 2.–3. dW(out, in) = dYᵀ(out, N) · X(N, in), then W may change: either inside one GEMM on
  // W's fp32 values (the zero-buffer update), or through the sink's buffer.
  Matmul dw{.ta = Trans::Yes,
            .tb = Trans::No,
            .M = out,
            .N = in,
            .K = N,
            .A = dy,
            .B = x,
            .ldc = in,
            .precision = wc.precision()};
  if (const auto u = sink.fused_linear_update(W)) {
    float* w32 = w.f32 ? w.f32 : wc.view(W);  // (out, in)
    dw.alpha = u->alpha;
    dw.beta = u->beta;
    dw.C = w32;
    be.matmul(dw);
    be.store(W.view(), w32, u->rounding);  // nothing to do for fp32, where w32 is W itself
  } else {
    float* dW = sink.gradient_buffer(W);  // (out, in)
    dw.C = dW;
    be.matmul(dw);
    sink.consume(W, dW);
  }
  if (b != nullptr) {
    float* db = sink.gradient_buffer(*b);  // (out)
    be.bias_grad(db, dY, N, out);
    sink.consume(*b, db);
  }
}

}  // namespace lomo
