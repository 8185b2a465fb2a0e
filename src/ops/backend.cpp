#include "ops/backend.h"

#include "core/error.h"
#include "ops/cpu/cpu_backend.h"
#if defined(LOMO_HAVE_CUDA)
#include "ops/cuda/cuda_backend.h"
#endif

namespace lomo {

std::unique_ptr<Backend> make_backend(const BackendOptions& opts) {
  if (opts.threads < 0) throw Error("--threads must be ≥ 1");
  if (opts.device == "cpu") return std::make_unique<CpuBackend>(opts.threads);
  if (opts.device == "cuda" || opts.device.starts_with("cuda:")) {
    int index = 0;
    if (opts.device != "cuda") {
      const std::string n = opts.device.substr(5);
      if (n.empty() || n.size() > 2 || n.find_first_not_of("0123456789") != std::string::npos) {
        throw Error("--device \"" + opts.device + "\": expected cuda or cuda:N (N a GPU number)");
      }
      index = std::stoi(n);
    }
#if defined(LOMO_HAVE_CUDA)
    return std::make_unique<cuda::CudaBackend>(index, opts.bf16_products);
#else
    (void)index;
    throw Error("--device " + opts.device +
                ": this build has no CUDA backend (nvcc was not found when it was configured, "
                "or it was built with -DLOMO_CUDA=OFF); use --device cpu");
#endif
  }
  throw Error("--device: unknown device \"" + opts.device + "\" (cpu, cuda, cuda:N)");
}

}  // namespace lomo
