#include "ops/cuda/device_memory.h"

#include <cuda_runtime.h>

#include <string>

#include "core/error.h"
#include "ops/cuda/cuda_util.h"

namespace lomo::cuda {

void* DeviceAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  check(cudaSetDevice(index_), "selecting the GPU for an allocation");
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);  // 256-byte aligned
  if (e != cudaSuccess && e != cudaErrorMemoryAllocation) {
    // Not a lack of memory (e.g. an earlier kernel's fault, reported here): say what it is.
    check(e, ("allocating " + format_bytes(bytes) + " on cuda:" + std::to_string(index_)).c_str());
  }
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the non-sticky error so later calls are not blamed for it
    size_t free = 0, total = 0;
    cudaMemGetInfo(&free, &total);
    throw Error("out of GPU memory on cuda:" + std::to_string(index_) + ": asked for " +
                format_bytes(bytes) + ", " + format_bytes(free) + " of " + format_bytes(total) +
                " free (" + cudaGetErrorString(e) +
                "); lower --batch-size or --seq-len, or turn on --checkpointing");
  }
  // cudaMemset would queue on the legacy default stream, which the backend's non-blocking
  // stream does not wait for: a copy or kernel queued there next could run before the zeros
  // land (and be overwritten by them). So zero it on the legacy stream and wait for that here.
  cudaError_t z = cudaMemsetAsync(p, 0, bytes, cudaStreamLegacy);
  if (z == cudaSuccess) z = cudaStreamSynchronize(cudaStreamLegacy);
  if (z != cudaSuccess) {
    cudaFree(p);
    check(z, "zero-filling a new GPU allocation");
  }
  return p;
}

void DeviceAllocator::deallocate(void* p, size_t) {
  if (p != nullptr) cudaFree(p);  // never throws: called from destructors
}

}  // namespace lomo::cuda
