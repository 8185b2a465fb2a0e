#include "ops/cpu/weight_grad.h"

#include "ops/cpu/gemm.h"
#include "ops/cpu/gemm_bf16.h"

namespace lomo {

void linear_weight_grad(const LinearGradOperands& ops, int64_t out, int64_t in, float alpha,
                        float beta, float* C) {
  if (ops.dY16 && ops.X16) {
    gemm_bf16(Trans::Yes, Trans::No, out, in, ops.N, alpha, ops.dY16, out, ops.X16, in, beta, C,
              in);
  } else {
    gemm(Trans::Yes, Trans::No, out, in, ops.N, alpha, ops.dY, out, ops.X, in, beta, C, in);
  }
}

}  // namespace lomo
