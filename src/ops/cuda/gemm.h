// PLACEHOLDER (the cuBLASLt wrapper replaces this file): every product of the CUDA backend.
#pragma once

#include <cuda_runtime.h>

#include "ops/tensor.h"

namespace lomo::cuda {

class LtGemm {
 public:
  explicit LtGemm(cudaStream_t stream);
  ~LtGemm();
  void run(const Matmul& m);

 private:
  cudaStream_t stream_;
};

}  // namespace lomo::cuda
