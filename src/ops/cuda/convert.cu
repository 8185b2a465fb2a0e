// PLACEHOLDER: replaced by the kernels of this concept.
#include "ops/cuda/cuda_backend.h"

#include "core/error.h"

namespace lomo::cuda {

void CudaBackend::to_f32(float*, ParamView, int64_t, int64_t) {
  throw Error("cuda backend: to_f32 is not implemented yet");
}

void CudaBackend::to_bf16(uint16_t*, const float*, int64_t) {
  throw Error("cuda backend: to_bf16 is not implemented yet");
}

void CudaBackend::store(ParamView, const float*, const RoundingMode&) {
  throw Error("cuda backend: store is not implemented yet");
}

void CudaBackend::fill_normal(float*, int64_t, uint64_t, uint64_t, double) {
  throw Error("cuda backend: fill_normal is not implemented yet");
}

}  // namespace lomo::cuda
