// PLACEHOLDER: replaced by the kernels of this concept.
#include "ops/cuda/cuda_backend.h"

#include "core/error.h"

namespace lomo::cuda {

void CudaBackend::embedding_forward(float*, const int32_t*, ParamView, int64_t) {
  throw Error("cuda backend: embedding_forward is not implemented yet");
}

void CudaBackend::embedding_backward(float*, const float*, const int32_t*, int64_t, int64_t) {
  throw Error("cuda backend: embedding_backward is not implemented yet");
}

void CudaBackend::embedding_update(ParamView, const float*, const int32_t*, int64_t, int32_t*, const SgdStep&, const HeldRows&) {
  throw Error("cuda backend: embedding_update is not implemented yet");
}

}  // namespace lomo::cuda
