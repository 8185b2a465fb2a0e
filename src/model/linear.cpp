#include "model/linear.h"

#include <algorithm>

#include "core/error.h"

namespace lomo {

namespace {

// drop(X)(N, in): X itself without dropout, else the masked copy in the adapter's scratch.
const float* dropped_input(Backend& be, const float* X, int64_t N, int64_t in,
                           const LinearAdapter& ad) {
  if (ad.dropout <= 0) return X;
  be.dropout(ad.xd, X, N * in, ad.dropout, ad.dropout_key);
  return ad.xd;
}

// u(N, r) = drop(X)(N, in) · A(r, in)ᵀ
void adapter_down(Backend& be, const float* xd, int64_t N, int64_t in, const LinearAdapter& ad) {
  const int64_t r = ad.A->shape[0];
  be.matmul({.ta = Trans::No,
             .tb = Trans::Yes,
             .M = N,
             .N = r,
             .K = in,
             .A = MatRef::f32(xd, in),
             .B = MatRef::f32(ad.A->data.f32(), in),
             .C = ad.u,
             .ldc = r});
}

void adapter_forward(Backend& be, float* Y, const float* X, int64_t N, const LinearAdapter& ad) {
  const int64_t r = ad.A->shape[0], in = ad.A->shape[1], out = ad.B->shape[0];
  adapter_down(be, dropped_input(be, X, N, in, ad), N, in, ad);
  // Y(N, out) += s · u(N, r) · B(out, r)ᵀ
  be.matmul({.ta = Trans::No,
             .tb = Trans::Yes,
             .M = N,
             .N = out,
             .K = r,
             .alpha = ad.scale,
             .A = MatRef::f32(ad.u, r),
             .B = MatRef::f32(ad.B->data.f32(), r),
             .beta = 1.0f,
             .C = Y,
             .ldc = out});
}

// dX += s·((dY·B)·A ⊙ mask / (1 − p)); dB = s·dYᵀ·u and dA = s·(dY·B)ᵀ·drop(X) to the sink.
// In the forward pass this was: Y += s · (drop(X)·Aᵀ)·Bᵀ.
void adapter_backward(Backend& be, float* dX, const float* dY, const float* X, int64_t N,
                      const LinearAdapter& ad, GradSink& sink) {
  const int64_t r = ad.A->shape[0], in = ad.A->shape[1], out = ad.B->shape[0];
  const float* xd = dropped_input(be, X, N, in, ad);  // (N, in)
  adapter_down(be, xd, N, in, ad);                    // u(N, r)
  // dB(out, r) = s · dY(N, out)ᵀ · u(N, r)
  float* dB = sink.gradient_buffer(*ad.B);
  be.matmul({.ta = Trans::Yes,
             .tb = Trans::No,
             .M = out,
             .N = r,
             .K = N,
             .alpha = ad.scale,
             .A = MatRef::f32(dY, out),
             .B = MatRef::f32(ad.u, r),
             .C = dB,
             .ldc = r});
  sink.consume(*ad.B, dB);
  // g(N, r) = dY(N, out) · B(out, r)
  be.matmul({.ta = Trans::No,
             .tb = Trans::No,
             .M = N,
             .N = r,
             .K = out,
             .A = MatRef::f32(dY, out),
             .B = MatRef::f32(ad.B->data.f32(), r),
             .C = ad.g,
             .ldc = r});
  // dA(r, in) = s · g(N, r)ᵀ · drop(X)(N, in)
  float* dA = sink.gradient_buffer(*ad.A);
  be.matmul({.ta = Trans::Yes,
             .tb = Trans::No,
             .M = r,
             .N = in,
             .K = N,
             .alpha = ad.scale,
             .A = MatRef::f32(ad.g, r),
             .B = MatRef::f32(xd, in),
             .C = dA,
             .ldc = in});
  sink.consume(*ad.A, dA);
  // dX(N, in) += s · g(N, r) · A(r, in), through the mask when there is dropout (drop(X) is dead
  // now: its scratch takes g·A first).
  Matmul dx{.ta = Trans::No,
            .tb = Trans::No,
            .M = N,
            .N = in,
            .K = r,
            .alpha = ad.scale,
            .A = MatRef::f32(ad.g, r),
            .B = MatRef::f32(ad.A->data.f32(), in),
            .beta = 1.0f,
            .C = dX,
            .ldc = in};
  if (ad.dropout <= 0) {
    be.matmul(dx);
    return;
  }
  dx.alpha = 1.0f;
  dx.beta = 0.0f;
  dx.C = ad.xd;
  be.matmul(dx);
  be.dropout_add(dX, ad.xd, N * in, ad.dropout, ad.scale, ad.dropout_key);
}

}  // namespace

void linear_forward(float* Y, const float* X, Param& W, const Param* b, int64_t N, WeightCache& wc,
                    const LinearAdapter* adapter) {
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
  if (adapter) adapter_forward(be, Y, X, N, *adapter);
}

namespace {

// 1. dX(N, in) = dY(N, out) · W(out, in): reads W, so it comes before any update of W.
void backward_dx(Backend& be, float* dX, const MatRef& dy, const MatRef& w, int64_t N,
                 int64_t out, int64_t in, DxMode dx_mode, Precision precision) {
  be.matmul({.ta = Trans::No,
             .tb = Trans::No,
             .M = N,
             .N = in,
             .K = out,
             .A = dy,
             .B = w,
             .beta = dx_mode == DxMode::Accumulate ? 1.0f : 0.0f,
             .C = dX,
             .ldc = in,
             .precision = precision});
}

// 3.–4. dW(out, in) = dYᵀ(out, N) · X(N, in), then W may change: either inside one GEMM on
// W's fp32 values (the zero-buffer update), or through the sink's buffer. Then the bias.
void backward_dw(WeightCache& wc, const MatRef& dy, const float* dY, const float* X, int x_slot,
                 const WeightCache::Operand& w, Param& W, Param* b, int64_t N, GradSink& sink) {
  Backend& be = wc.backend();
  const int64_t out = W.shape[0], in = W.shape[1];
  if (sink.trains(W)) {
    const MatRef x = wc.operand(X, N, in, x_slot);  // (N, in)
    Matmul dw{.ta = Trans::Yes,
              .tb = Trans::No,
              .M = out,
              .N = in,
              .K = N,
              .A = dy,
              .B = x,
              .ldc = in,
              .precision = wc.precision()};
    if (const auto u = sink.fused_update(W)) {
      dw.alpha = -u->step;
      dw.beta = u->keep;
      if (w.f32 != nullptr) {  // W's own fp32 storage, or the view the dX product read
        dw.C = w.f32;          // (out, in)
        be.matmul(dw);
        be.store(W.view(), w.f32, u->rounding);  // nothing to do for fp32 (W itself)
      } else {
        // bf16 products read W as stored: its fp32 values exist a block of rows at a time.
        const int64_t rows = wc.update_rows(W);
        for (int64_t r = 0; r < out; r += rows) {
          const int64_t n = std::min(rows, out - r);
          dw.M = n;
          dw.A = dy.at(0, r);              // columns [r, r + n) of dY (N, out)
          dw.C = wc.view_rows(W, r, n);    // (n, in)
          be.matmul(dw);
          be.store(W.view().row_block(r, n), dw.C, u->rounding);
        }
      }
    } else {
      float* dW = sink.gradient_buffer(W);  // (out, in)
      dw.C = dW;
      be.matmul(dw);
      sink.consume(W, dW);
    }
  }
  if (b != nullptr && sink.trains(*b)) {
    float* db = sink.gradient_buffer(*b);  // (out)
    be.bias_grad(db, dY, N, out);
    sink.consume(*b, db);
  }
}

}  // namespace

void linear_backward(float* dX, const float* dY, const float* X, Param& W, Param* b, int64_t N,
                     DxMode dx_mode, GradSink& sink, WeightCache& wc,
                     const LinearAdapter* adapter) {
  Backend& be = wc.backend();
  const int64_t out = W.shape[0], in = W.shape[1];
  // bf16 products: dY and X take one scratch slot each, the wider one the wide slot.
  const int x_slot = wc.slot_for(N * in);
  const MatRef dy = wc.operand(dY, N, out, 1 - x_slot);  // (N, out)
  const WeightCache::Operand w = wc.weight(W);           // (out, in)
  backward_dx(be, dX, dy, w.ref, N, out, in, dx_mode, wc.precision());
  // 2. The adapter: its part of dX, and its gradients (it never reads W).
  if (adapter) adapter_backward(be, dX, dY, X, N, *adapter, sink);
  backward_dw(wc, dy, dY, X, x_slot, w, W, b, N, sink);
}

void linear_backward_chunked(float* dx_chunk, int64_t chunk_rows, const float* dY, const float* X,
                             Param& W, Param* b, int64_t N, GradSink& sink, WeightCache& wc,
                             const std::function<void(int64_t r, int64_t n)>& consume) {
  LOMO_ASSERT(chunk_rows > 0, "linear_backward_chunked: empty chunks");
  const int64_t out = W.shape[0], in = W.shape[1];
  const int x_slot = wc.slot_for(N * in);
  const MatRef dy = wc.operand(dY, N, out, 1 - x_slot);  // (N, out)
  const WeightCache::Operand w = wc.weight(W);           // (out, in)
  for (int64_t r = 0; r < N; r += chunk_rows) {
    const int64_t n = std::min(chunk_rows, N - r);
    backward_dx(wc.backend(), dx_chunk, dy.at(r, 0), w.ref, n, out, in, DxMode::Overwrite,
                wc.precision());
    consume(r, n);
  }
  backward_dw(wc, dy, dY, X, x_slot, w, W, b, N, sink);
}

}  // namespace lomo
