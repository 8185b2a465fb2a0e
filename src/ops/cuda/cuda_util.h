// What every CUDA translation unit of the backend shares: error checks that throw lomo::Error
// with the call's context, and launch shapes for element-wise kernels.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace lomo::cuda {

// Throws lomo::Error "<what>: <CUDA's message> (<error name>)" unless e is cudaSuccess.
void check(cudaError_t e, const char* what);
// After a kernel launch: a bad launch configuration or an earlier asynchronous fault, named by
// the kernel that was being launched.
void check_launch(const char* kernel);

// Threads per block of the element-wise kernels.
inline constexpr int kBlock = 256;
// Blocks for n elements at one element per thread, capped (kernels loop with a grid stride
// beyond the cap); at least 1 so that a launch for n = 0 is still valid.
inline unsigned grid_for(int64_t n, int block = kBlock) {
  const int64_t blocks = (n + block - 1) / block;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, int64_t{1} << 20));
}

}  // namespace lomo::cuda
