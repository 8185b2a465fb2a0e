#include "ops/cuda/gemm.h"

#include "core/error.h"

namespace lomo::cuda {

LtGemm::LtGemm(cudaStream_t stream) : stream_(stream) {}
LtGemm::~LtGemm() = default;
void LtGemm::run(const Matmul&) { throw Error("cuda backend: matmul is not implemented yet"); }

}  // namespace lomo::cuda
