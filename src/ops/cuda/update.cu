// PLACEHOLDER: replaced by the kernels of this concept.
#include "ops/cuda/cuda_backend.h"

#include "core/error.h"

namespace lomo::cuda {

void CudaBackend::clip_by_value(float*, int64_t, float) {
  throw Error("cuda backend: clip_by_value is not implemented yet");
}

bool CudaBackend::all_finite(const float*, int64_t) {
  throw Error("cuda backend: all_finite is not implemented yet");
}

bool CudaBackend::any_beyond(const float*, int64_t, float) {
  throw Error("cuda backend: any_beyond is not implemented yet");
}

double CudaBackend::sum_squares(const float*, int64_t) {
  throw Error("cuda backend: sum_squares is not implemented yet");
}

void CudaBackend::sgd_update(ParamView, const float*, const SgdStep&) {
  throw Error("cuda backend: sgd_update is not implemented yet");
}

void CudaBackend::adalomo_update(ParamView, float*, float*, float*, const AdaLomoStep&) {
  throw Error("cuda backend: adalomo_update is not implemented yet");
}

void CudaBackend::adamw_update(ParamView, const float*, float*, float*, const AdamWStep&) {
  throw Error("cuda backend: adamw_update is not implemented yet");
}

}  // namespace lomo::cuda
