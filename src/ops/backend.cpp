#include "ops/backend.h"

#include "core/error.h"
#include "ops/cpu/cpu_backend.h"

namespace lomo {

std::unique_ptr<Backend> make_backend(const BackendOptions& opts) {
  if (opts.threads < 0) throw Error("--threads must be ≥ 1");
  if (opts.device == "cpu") return std::make_unique<CpuBackend>(opts.threads);
  if (opts.device == "cuda") {
    throw Error("--device cuda: this build has no CUDA backend (it is the next step after the "
                "backend seam); use --device cpu");
  }
  throw Error("--device: unknown device \"" + opts.device + "\" (cpu)");
}

}  // namespace lomo
