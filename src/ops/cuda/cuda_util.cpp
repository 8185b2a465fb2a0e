#include "ops/cuda/cuda_util.h"

#include <string>

#include "core/error.h"

namespace lomo::cuda {

void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  throw Error(std::string(what) + ": " + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) +
              ")");
}

void check_launch(const char* kernel) {
  check(cudaGetLastError(), (std::string("launching ") + kernel).c_str());
}

}  // namespace lomo::cuda
