#include "ops/backend.h"

#include "core/error.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cuda/device_plan.h"
#if defined(LOMO_HAVE_CUDA)
#include "ops/cuda/cuda_backend.h"
#endif

namespace lomo {

int64_t cuda_attention_workspace_elems(const AttnDims& d, bool cudnn) {
  return cuda::attention_workspace_elems(d, cudnn);
}

size_t cuda_untracked_bytes() {
  return cuda::untracked_device_bytes();
}

bool cuda_attention_through_cudnn(bool bf16_products) {
  return bf16_products && (cuda::cudnn_attention_built() || !cuda::cuda_backend_built());
}

bool cuda_backend_built() {
  return cuda::cuda_backend_built();
}

Device parse_device(const std::string& device) {
  if (device == "cpu") return Device::host();
  if (device == "cuda") return {Device::Kind::Cuda, 0};
  if (device.starts_with("cuda:")) {
    const std::string n = device.substr(5);
    if (n.empty() || n.size() > 2 || n.find_first_not_of("0123456789") != std::string::npos) {
      throw Error("--device \"" + device + "\": expected cuda or cuda:N (N a GPU number)");
    }
    return {Device::Kind::Cuda, std::stoi(n)};
  }
  throw Error("--device: unknown device \"" + device + "\" (cpu, cuda, cuda:N)");
}

std::unique_ptr<Backend> make_backend(const BackendOptions& opts) {
  if (opts.threads < 0) throw Error("--threads must be ≥ 1");
  const Device device = parse_device(opts.device);
  if (device == Device::host()) return std::make_unique<CpuBackend>(opts.threads);
#if defined(LOMO_HAVE_CUDA)
  return std::make_unique<cuda::CudaBackend>(device.index, opts.bf16_products);
#else
  throw Error("--device " + opts.device +
              ": this build has no CUDA backend (nvcc was not found when it was configured, "
              "or it was built with -DLOMO_CUDA=OFF); use --device cpu");
#endif
}

}  // namespace lomo
