// Linear layers, Y = X·Wᵀ + b with W stored (out, in) as in Hugging Face. Every linear layer of
// the model goes through linear_backward, which is where the LOMO order rule (design §2 rule 2)
// is written, once:
//   1. dX = dY·W     — the last computation that reads W,
//   2. dW = dYᵀ·X    — into the sink's buffer,
//   3. hand dW to the sink, which may now change W;  then the same for the bias, db = Σ_rows dY.
#pragma once

#include <cstdint>

#include "model/params.h"
#include "model/weights.h"
#include "optim/grad_sink.h"

namespace lomo {

enum class DxMode { Overwrite, Accumulate };
// Hold: the weight's gradient stays in the sink's buffer without being consumed (the tied LM
// head, whose gradient is completed by the embedding backward at the very end).
enum class WeightGrad { Consume, Hold };

// Y(N, out) ← X(N, in), W(out, in), b(out) or nullptr. W is read through `wc` (fp32 view).
void linear_forward(float* Y, const float* X, Param& W, const Param* b, int64_t N, WeightCache& wc);

// dX(N, in) ← dY(N, out) · W(out, in), then dW(out, in) = dYᵀ·X, db(out) = Σ_n dY.
void linear_backward(float* dX, const float* dY, const float* X, Param& W, Param* b, int64_t N,
                     DxMode dx_mode, GradSink& sink, WeightCache& wc,
                     WeightGrad weight_grad = WeightGrad::Consume);

}  // namespace lomo
