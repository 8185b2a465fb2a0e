// NVRTC, opened on first call instead of linked. cudnn-frontend's headers (its experimental
// runtime-compiled engines, which our attention graphs never select) reference seven NVRTC
// functions, so the binary must define them; linking libnvrtc for that cost every process
// ~30 MiB of resident memory at start-up (measured 2026-12-02, CUDA 13.0). These definitions
// open libnvrtc.so.<CUDA major> at the first call and forward to it; without the library they
// return NVRTC_ERROR_INTERNAL_ERROR, which the frontend reports as an engine failure.
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <nvrtc.h>

#include <string>

namespace {

void* nvrtc_library() {
  static void* const lib = [] {
    const std::string soname = "libnvrtc.so." + std::to_string(CUDART_VERSION / 1000);
    void* h = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
#ifdef LOMO_CUDA_LIBRARY_DIR
    if (h == nullptr)
      h = dlopen((LOMO_CUDA_LIBRARY_DIR "/" + soname).c_str(), RTLD_NOW | RTLD_LOCAL);
#endif
    return h;
  }();
  return lib;
}

// The library's own `name`, or null.
template <typename F>
F* nvrtc_function(const char* name) {
  void* lib = nvrtc_library();
  return lib == nullptr ? nullptr : reinterpret_cast<F*>(dlsym(lib, name));
}

}  // namespace

#define LOMO_NVRTC_FORWARD(name, params, args)                      \
  nvrtcResult name params {                                         \
    static auto* const f = nvrtc_function<decltype(::name)>(#name); \
    return f == nullptr ? NVRTC_ERROR_INTERNAL_ERROR : f args;      \
  }

extern "C" {
LOMO_NVRTC_FORWARD(nvrtcCreateProgram,
                   (nvrtcProgram * prog, const char* src, const char* name, int numHeaders,
                    const char* const* headers, const char* const* includeNames),
                   (prog, src, name, numHeaders, headers, includeNames))
LOMO_NVRTC_FORWARD(nvrtcDestroyProgram, (nvrtcProgram * prog), (prog))
LOMO_NVRTC_FORWARD(nvrtcCompileProgram,
                   (nvrtcProgram prog, int numOptions, const char* const* options),
                   (prog, numOptions, options))
LOMO_NVRTC_FORWARD(nvrtcGetCUBINSize, (nvrtcProgram prog, size_t* cubinSizeRet),
                   (prog, cubinSizeRet))
LOMO_NVRTC_FORWARD(nvrtcGetCUBIN, (nvrtcProgram prog, char* cubin), (prog, cubin))
LOMO_NVRTC_FORWARD(nvrtcGetProgramLogSize, (nvrtcProgram prog, size_t* logSizeRet),
                   (prog, logSizeRet))
LOMO_NVRTC_FORWARD(nvrtcGetProgramLog, (nvrtcProgram prog, char* log), (prog, log))
}
