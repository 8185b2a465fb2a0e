#include "ops/cuda/cuda_backend.h"

#include <string>

#include "core/error.h"
#include "ops/cuda/cuda_util.h"
#include "ops/cuda/event_clock.h"
#include "ops/cuda/gemm.h"
#if defined(LOMO_HAVE_CUDNN_FRONTEND)
#include "ops/cuda/attention_cudnn.h"
#else
namespace lomo::cuda {
class CudnnAttention {};  // never made in this build; complete so that the member can be freed
}  // namespace lomo::cuda
#endif

namespace lomo::cuda {

namespace {

// "cuda:0 (NVIDIA H200, sm_90, 139.8 GiB)".
std::string describe(int index, const cudaDeviceProp& p) {
  return "cuda:" + std::to_string(index) + " (" + p.name + ", sm_" + std::to_string(p.major) +
         std::to_string(p.minor) + ", " + format_bytes(p.totalGlobalMem) + ")";
}

// Frees what the constructor made, after the queued work (never throws: the destructor's body too).
void release(cudaStream_t& stream, void*& reduce_dev, void*& reduce_host) noexcept {
  if (stream != nullptr) {
    cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
    stream = nullptr;
  }
  if (reduce_dev != nullptr) cudaFree(reduce_dev);
  if (reduce_host != nullptr) cudaFreeHost(reduce_host);
  reduce_dev = reduce_host = nullptr;
}

}  // namespace

CudaBackend::CudaBackend(int device_index, bool bf16_products)
    : index_(device_index), allocator_(device_index) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::string why = e != cudaSuccess ? cudaGetErrorString(e) : "no device found";
    if (e == cudaErrorInsufficientDriver) {
      why += ": no NVIDIA driver is loaded, or it is older than this build's CUDA runtime";
    }
    throw Error("--device cuda: no usable CUDA GPU here (" + why + "); use --device cpu");
  }
  if (device_index < 0 || device_index >= count) {
    throw Error("--device cuda:" + std::to_string(device_index) + ": this machine has " +
                std::to_string(count) + " GPU(s), numbered from 0");
  }
  check(cudaSetDevice(index_), "selecting the GPU");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, index_), "reading the GPU's properties");
  name_ = describe(index_, prop);
  try {
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating the stream");
    check(cudaMalloc(&reduce_dev_, kReduceBytes), "allocating the reduction scratch");
    check(cudaMallocHost(&reduce_host_, kReduceBytes), "allocating pinned host scratch");
    gemm_ = std::make_unique<LtGemm>(stream_);
#if defined(LOMO_HAVE_CUDNN_FRONTEND)
  cudnn_attn_ = std::make_unique<CudnnAttention>(bf16_products ? CudnnAttention::Use::Bf16
                                                               : CudnnAttention::Use::Off);
#else
  (void)bf16_products;
#endif
  } catch (...) {
    release(stream_, reduce_dev_, reduce_host_);  // no destructor runs for a throwing constructor
    throw;
  }
}

CudaBackend::~CudaBackend() {
  cudnn_attn_.reset();
  gemm_.reset();
  release(stream_, reduce_dev_, reduce_host_);
}

size_t CudaBackend::memory_available() const {
  size_t free = 0, total = 0;
  check(cudaSetDevice(index_), "selecting the GPU");
  check(cudaMemGetInfo(&free, &total), "reading the GPU's free memory");
  return free;
}

void CudaBackend::synchronize(const char* what) {
  check(cudaStreamSynchronize(stream_), what);
}

std::unique_ptr<PhaseClock> CudaBackend::make_phase_clock() {
  return std::make_unique<EventClock>(stream_);
}

void CudaBackend::copy_to_device(void* dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_),
        "copying to the GPU");
  synchronize("copying to the GPU");  // the host buffer may be reused at once
}

void CudaBackend::copy_to_host(void* host_dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_),
        "copying from the GPU");
  synchronize("copying from the GPU");
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_),
        "copying within the GPU");
}

void CudaBackend::matmul(const Matmul& m) { gemm_->run(m); }

}  // namespace lomo::cuda
