// PLACEHOLDER: replaced by the kernels of this concept.
#include "ops/cuda/cuda_backend.h"

#include "core/error.h"

namespace lomo::cuda {

int64_t CudaBackend::attention_workspace_elems(const AttnDims&) const {
  throw Error("cuda backend: attention_workspace_elems is not implemented yet");
}

void CudaBackend::attention_forward(float*, float*, float*, const float*, const float*, const float*, const int32_t*, const AttnDims&) {
  throw Error("cuda backend: attention_forward is not implemented yet");
}

void CudaBackend::attention_backward(float*, float*, float*, float*, const float*, const float*, const float*, const float*, const float*, const int32_t*, const AttnDims&) {
  throw Error("cuda backend: attention_backward is not implemented yet");
}

int64_t CudaBackend::attention_cached_workspace_elems(const KvAttnDims&) const {
  throw Error("cuda backend: attention_cached_workspace_elems is not implemented yet");
}

void CudaBackend::attention_cached(float*, float*, const float*, const float*, const float*, const KvAttnDims&) {
  throw Error("cuda backend: attention_cached is not implemented yet");
}

}  // namespace lomo::cuda
