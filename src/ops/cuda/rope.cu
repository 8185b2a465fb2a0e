// PLACEHOLDER: replaced by the kernels of this concept.
#include "ops/cuda/cuda_backend.h"

#include "core/error.h"

namespace lomo::cuda {

void CudaBackend::rope_forward(float*, const RopeTable&, int64_t, int64_t, int64_t, int64_t) {
  throw Error("cuda backend: rope_forward is not implemented yet");
}

void CudaBackend::rope_backward(float*, const RopeTable&, int64_t, int64_t, int64_t, int64_t) {
  throw Error("cuda backend: rope_backward is not implemented yet");
}

void CudaBackend::rope_forward_at(float*, const RopeTable&, int64_t, int64_t, int64_t, int64_t, int64_t) {
  throw Error("cuda backend: rope_forward_at is not implemented yet");
}

}  // namespace lomo::cuda
