// PLACEHOLDER: replaced by the kernels of this concept.
#include "ops/cuda/cuda_backend.h"

#include "core/error.h"

namespace lomo::cuda {

void CudaBackend::rmsnorm_forward(float*, float*, const float*, const float*, int64_t, int64_t, double) {
  throw Error("cuda backend: rmsnorm_forward is not implemented yet");
}

void CudaBackend::rmsnorm_apply(float*, const float*, const float*, const float*, int64_t, int64_t) {
  throw Error("cuda backend: rmsnorm_apply is not implemented yet");
}

void CudaBackend::rmsnorm_backward(float*, float*, const float*, const float*, const float*, const float*, int64_t, int64_t) {
  throw Error("cuda backend: rmsnorm_backward is not implemented yet");
}

}  // namespace lomo::cuda
