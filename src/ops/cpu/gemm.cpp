#include "ops/cpu/gemm.h"

#include <oneapi/dnnl/dnnl.h>

#include <string>

#include "core/error.h"

namespace lomo {

void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  // dnnl_sgemm is row-major, matching our convention directly.
  const dnnl_status_t st = dnnl_sgemm(ta == Trans::Yes ? 'T' : 'N', tb == Trans::Yes ? 'T' : 'N', M,
                                      N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  LOMO_ASSERT(st == dnnl_success, "dnnl_sgemm failed with status " + std::to_string(st) +
                                      " for M=" + std::to_string(M) + " N=" + std::to_string(N) +
                                      " K=" + std::to_string(K));
}

}  // namespace lomo
