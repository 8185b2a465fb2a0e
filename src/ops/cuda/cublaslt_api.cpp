#include "ops/cuda/cublaslt_api.h"

#include <dlfcn.h>

#include <string>

#include "core/error.h"

namespace lomo {

namespace {

// The loader's message for the last failed dlopen.
std::string dl_error() {
  const char* e = dlerror();
  return e != nullptr ? e : "no message";
}

CublasLtApi open_cublaslt() {
  const std::string soname = "libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR);
  void* lib = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  std::string why = lib == nullptr ? dl_error() : "";
#ifdef LOMO_CUDA_LIBRARY_DIR
  if (lib == nullptr) {
    const std::string path = std::string(LOMO_CUDA_LIBRARY_DIR) + "/" + soname;
    lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) why += "; " + dl_error();
  }
#endif
  if (lib == nullptr) {
    throw Error("cuBLASLt: cannot open " + soname + " (" + why + "): the CUDA backend needs CUDA " +
                std::to_string(CUBLAS_VER_MAJOR) +
                "'s cuBLASLt; put its folder on LD_LIBRARY_PATH");
  }
  CublasLtApi api;
#define LOMO_CUBLASLT_RESOLVE(name)                                   \
  api.name = reinterpret_cast<decltype(api.name)>(dlsym(lib, #name)); \
  if (api.name == nullptr) {                                          \
    dlclose(lib);                                                     \
    throw Error("cuBLASLt: " + soname + " has no " #name);            \
  }
  LOMO_CUBLASLT_FUNCTIONS(LOMO_CUBLASLT_RESOLVE)
#undef LOMO_CUBLASLT_RESOLVE
  return api;  // the library stays open for the life of the process
}

}  // namespace

const CublasLtApi& cublaslt() {
  static const CublasLtApi api = open_cublaslt();
  return api;
}

}  // namespace lomo
