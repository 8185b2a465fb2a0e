// Linear layers, Y = X·Wᵀ + b with W stored (out, in) as in Hugging Face, and optionally a LoRA
// adapter beside W (model/lora.h): Y += s·(drop(X)·Aᵀ)·Bᵀ. Every linear layer of the model goes
// through linear_backward, which is where the LOMO order rule (design §2 rule 2) is written, once:
//   1. dX = dY·W (+ the adapter's s·(dY·B)·A) — the last computation that reads W,
//   2. the adapter's dB and dA to the sink (they never read W),
//   3. dW = dYᵀ·X    — into the sink's buffer, or, for the zero-buffer update, straight into W
//                      inside the same GEMM (W ← beta·W + alpha·dYᵀX),
//   4. hand dW to the sink, which may now change W;  then the same for the bias, db = Σ_rows dY.
// A tensor the sink does not train (GradSink::trains) gets no gradient at all: only dX flows.
// W's products run on the WeightCache's backend in its precision (model/weights.h); the
// adapter's are fp32 (its tensors are fp32, its rank small).
#pragma once

#include <cstdint>
#include <functional>

#include "model/grad_sink.h"
#include "model/lora.h"
#include "model/params.h"
#include "model/weights.h"

namespace lomo {

enum class DxMode { Overwrite, Accumulate };

// A LoRA adapter as one call of a linear layer uses it: its tensors, its scaling, this call's
// dropout, and the scratch its products need (carved by the model for the step).
struct LinearAdapter {
  Param* A = nullptr;  // (r, in)
  Param* B = nullptr;  // (out, r)
  float scale = 0;     // alpha / r (or / √r)
  float dropout = 0;   // 0: none (always 0 outside training)
  uint64_t dropout_key = 0;  // the mask's key (core/rng.h dropout_keeps): seed, step, layer, target
  float* u = nullptr;   // (N, r) scratch: drop(X)·Aᵀ
  float* g = nullptr;   // (N, r) scratch: dY·B
  float* xd = nullptr;  // (N, in) scratch: drop(X), then (dY·B)·A; dropout only
};

// Y(N, out) ← X(N, in), W(out, in), b(out) or nullptr, adapter or nullptr.
void linear_forward(float* Y, const float* X, Param& W, const Param* b, int64_t N, WeightCache& wc,
                    const LinearAdapter* adapter = nullptr);

// dX(N, in) ← dY(N, out) · W(out, in) (overwritten or accumulated) plus the adapter's part, then
// the adapter's dA, dB, and dW(out, in) = dYᵀ·X and db(out) = Σ_n dY go to the sink.
void linear_backward(float* dX, const float* dY, const float* X, Param& W, Param* b, int64_t N,
                     DxMode dx_mode, GradSink& sink, WeightCache& wc,
                     const LinearAdapter* adapter = nullptr);

// The same without an adapter, for a dX too wide to hold for all N rows (LlamaModel's MLP
// backward, whose dX is d_ff wide): dX is made `chunk_rows` rows at a time into dx_chunk
// (chunk_rows, in), and after each chunk consume(r, n) is called with rows [r, r + n) of it
// there; only after the last chunk does dW go to the sink (or into W). W is converted once.
void linear_backward_chunked(float* dx_chunk, int64_t chunk_rows, const float* dY, const float* X,
                             Param& W, Param* b, int64_t N, GradSink& sink, WeightCache& wc,
                             const std::function<void(int64_t r, int64_t n)>& consume);

}  // namespace lomo
