// PLACEHOLDER: replaced by the kernels of this concept.
#include "ops/cuda/cuda_backend.h"

#include "core/error.h"

namespace lomo::cuda {

double CudaBackend::lm_head_loss(ParamView, const LmHeadIo&) {
  throw Error("cuda backend: lm_head_loss is not implemented yet");
}

}  // namespace lomo::cuda
