// Linear layers, Y = X·Wᵀ + b with W stored (out, in) as in Hugging Face. Every linear layer of
// the model goes through linear_backward, which is where the LOMO order rule (design §2 rule 2)
// is written, once:
//   1. dX = dY·W     — the last computation that reads W,
//   2. dW = dYᵀ·X    — into the sink's buffer, or, for the zero-buffer update, straight into W
//                      inside the same GEMM (W ← beta·W + alpha·dYᵀX),
//   3. hand dW to the sink, which may now change W;  then the same for the bias, db = Σ_rows dY.
// Products run on the WeightCache's backend in its precision (model/weights.h).
#pragma once

#include <cstdint>

#include "model/grad_sink.h"
#include "model/params.h"
#include "model/weights.h"

namespace lomo {

enum class DxMode { Overwrite, Accumulate };

// Y(N, out) ← X(N, in), W(out, in), b(out) or nullptr.
void linear_forward(float* Y, const float* X, Param& W, const Param* b, int64_t N, WeightCache& wc);

// dX(N, in) ← dY(N, out) · W(out, in) (overwritten or accumulated), then dW(out, in) = dYᵀ·X and
// db(out) = Σ_n dY go to the sink.
void linear_backward(float* dX, const float* dY, const float* X, Param& W, Param* b, int64_t N,
                     DxMode dx_mode, GradSink& sink, WeightCache& wc);

}  // namespace lomo
