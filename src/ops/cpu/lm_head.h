// The CPU's fused LM head and cross-entropy (schedules and accumulation rule: ops/lm_head.h).
#pragma once

#include "ops/lm_head.h"
#include "ops/tensor.h"

namespace lomo {

// W(V, d) in fp32, bf16 or fp16. Returns Σ nll over the rows.
double lm_head_loss(ParamView W, const LmHeadIo& io);

}  // namespace lomo
