// cuBLASLt, opened on first use instead of linked. Linked, libcublasLt's start-up (its
// relocations and static data) adds ~150 MiB to the resident memory of every process, CPU runs
// and `lomo --help` included (151 MiB measured at main() on 2026-12-02, CUDA 13.0); opened
// here, only a run that makes a CUDA backend pays it. The functions keep their cuBLASLt names
// and types: cublaslt().cublasLtMatmul(...) is the library's own cublasLtMatmul.
#pragma once

#include <cublasLt.h>

namespace lomo {

// Every cuBLASLt function the CUDA backend calls (ops/cuda/gemm.cpp).
#define LOMO_CUBLASLT_FUNCTIONS(X)                                                               \
  X(cublasLtCreate)                                                                              \
  X(cublasLtDestroy) X(cublasLtGetStatusName) X(cublasLtGetStatusString) X(cublasLtMatmul)       \
      X(cublasLtMatmulAlgoGetHeuristic) X(cublasLtMatmulDescCreate) X(cublasLtMatmulDescDestroy) \
          X(cublasLtMatmulDescSetAttribute) X(cublasLtMatmulPreferenceCreate)                    \
              X(cublasLtMatmulPreferenceDestroy) X(cublasLtMatmulPreferenceSetAttribute)         \
                  X(cublasLtMatrixLayoutCreate) X(cublasLtMatrixLayoutDestroy)                   \
                      X(cublasLtMatrixTransform) X(cublasLtMatrixTransformDescCreate)            \
                          X(cublasLtMatrixTransformDescDestroy)

struct CublasLtApi {
#define LOMO_CUBLASLT_POINTER(name) decltype(&::name) name = nullptr;
  LOMO_CUBLASLT_FUNCTIONS(LOMO_CUBLASLT_POINTER)
#undef LOMO_CUBLASLT_POINTER
};

// The library's functions, opened on the first call: libcublasLt.so.<the headers' major
// version> from the library path, else the toolkit's copy found at build time. Throws Error
// naming the library and the loader's message when it cannot be opened or lacks a function.
const CublasLtApi& cublaslt();

}  // namespace lomo
