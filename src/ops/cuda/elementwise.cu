// PLACEHOLDER: replaced by the kernels of this concept.
#include "ops/cuda/cuda_backend.h"

#include "core/error.h"

namespace lomo::cuda {

void CudaBackend::fill(float*, float, int64_t) {
  throw Error("cuda backend: fill is not implemented yet");
}

void CudaBackend::swiglu_forward(float*, const float*, const float*, int64_t) {
  throw Error("cuda backend: swiglu_forward is not implemented yet");
}

void CudaBackend::swiglu_backward(float*, float*, const float*, const float*, const float*, int64_t) {
  throw Error("cuda backend: swiglu_backward is not implemented yet");
}

void CudaBackend::add(float*, const float*, int64_t) {
  throw Error("cuda backend: add is not implemented yet");
}

void CudaBackend::dropout(float*, const float*, int64_t, float, uint64_t) {
  throw Error("cuda backend: dropout is not implemented yet");
}

void CudaBackend::dropout_add(float*, const float*, int64_t, float, float, uint64_t) {
  throw Error("cuda backend: dropout_add is not implemented yet");
}

void CudaBackend::bias_rows(float*, const float*, int64_t, int64_t) {
  throw Error("cuda backend: bias_rows is not implemented yet");
}

void CudaBackend::bias_grad(float*, const float*, int64_t, int64_t) {
  throw Error("cuda backend: bias_grad is not implemented yet");
}

}  // namespace lomo::cuda
