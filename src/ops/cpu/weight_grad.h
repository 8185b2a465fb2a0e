// The weight-gradient product of a linear layer, dW(out, in) = dYᵀ(out, N) · X(N, in), in fp32 or,
// when the layer runs its products in bf16 (`--bf16-gemm`), on the bf16 copies of its operands.
// Both the buffered gradient (model/linear.cpp) and LOMO's zero-buffer update (optim/sinks.cpp)
// go through it, so the two paths cannot use different arithmetic.
#pragma once

#include <cstdint>

namespace lomo {

struct LinearGradOperands {
  const float* dY = nullptr;       // (N, out)
  const float* X = nullptr;        // (N, in)
  const uint16_t* dY16 = nullptr;  // (N, out) bf16 copy, or null
  const uint16_t* X16 = nullptr;   // (N, in) bf16 copy, or null
  int64_t N = 0;
};

// C(out, in) = alpha · dYᵀ·X + beta · C; bf16 products when both copies are given.
void linear_weight_grad(const LinearGradOperands& ops, int64_t out, int64_t in, float alpha,
                        float beta, float* C);

}  // namespace lomo
