// What the CUDA backend allocates, as pure host functions of the shapes: the memory planner's
// input for --device cuda (train/memory_plan.h). Compiled in every build, with or without CUDA,
// so that `lomo memory --device cuda` predicts a GPU run on a machine that has none. The CUDA
// backend declares its scratch through these same functions (CudaBackend::
// attention_workspace_elems, CudnnAttention), as the CPU backend's declaration is the planner's
// input for a CPU run.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/attention.h"

namespace lomo::cuda {

// Device memory the backend holds for the whole run outside the tracker (plain cudaMalloc in its
// constructor): the cuBLASLt workspace (ops/cuda/gemm.h) and the reduction scratch
// (cuda_backend.h). Besides these the GPU holds what no formula here knows: the CUDA context and
// cuDNN's handle (the driver's, measured on the device by cudaMemGetInfo).
inline constexpr size_t kCublasLtWorkspaceBytes = size_t{32} << 20;
inline constexpr size_t kReduceScratchBytes = size_t{1} << 16;
inline constexpr size_t untracked_device_bytes() {
  return kCublasLtWorkspaceBytes + kReduceScratchBytes;
}

// Whether cuDNN's fused attention takes shape `d` on a GPU of compute capability `sm` (80 for
// sm_80, 90 for sm_90, …): stated once, read by CudnnAttention, the planner and the tests.
//   * sm ≥ 80: cuDNN's bf16 flash attention needs Ampere or newer.
//   * head_dim a multiple of 16 and at most 128: cuDNN's own checks take multiples of 8 up to
//     128 (backward) on sm_8x/sm_90 but multiples of 16 only on sm_100; one rule for all GPUs,
//     and it leaves the head_dim-8 test fixtures to the fp32 kernels.
//   * T ≥ 2: cuDNN's backward rejects s_q = s_kv = 1.
//   * n_head a multiple of n_kv (GQA groups), every size positive.
bool cudnn_sdpa_supported(const AttnDims& d, int sm);

// The most workspace cuDNN's own SDPA graphs may use for `d`, in bytes: engine configurations
// that need more are deselected before the graphs are built (a shape none fits is left to the
// fp32 kernels), so this is what the planner counts. Its terms, from cudnn-frontend's backward
// node (its FE workspace and the engine's): the fp32 dQ accumulator (B, n_head, T, head_dim) and
// row sums (B, n_head, T); GQA's full-head dK and dV, (B, n_head, T, head_dim) each in bf16; the
// deterministic backward's dP scores, bf16 (B, n_head, T rounded up to 64, T rounded up to 128),
// which the frontend uses on Hopper whenever determinism is asked for (quadratic in T: 256 MiB
// for LLaMA-7B at 2048 tokens, 4 GiB at 8192 — counted, not hidden); and 1 MiB for counters and
// alignment. Both the dQ accumulator and the scores are counted though a graph uses one or the
// other: a bound, not a guess.
size_t cudnn_sdpa_workspace_cap(const AttnDims& d);

// The cuDNN path's workspace, byte offsets of its parts, each 256-byte aligned: the bf16 copies
// of q, k, v, out, dout, dq, dk, dv, the int32 lengths, the fp32 statistic of a recomputed
// forward, then cuDNN's own workspace (its cap). Forward and backward share the first parts,
// so that the backward's recomputed forward uses the forward's layout.
struct SdpaLayout {
  size_t q, k, v, o, seq, dout, dq, dk, dv, stats, cudnn, cudnn_bytes, total;
  explicit SdpaLayout(const AttnDims& d);
};

// fp32 elements of scratch the CUDA backend declares for attention of shape `d`
// (Backend::attention_workspace_elems): the fp32 kernels' D = rowsum(dO ⊙ O) per query row, or,
// where cuDNN may take the shape (`cudnn`: a run with bf16 products, in a build with cuDNN's
// frontend, on sm ≥ 80, and cudnn_sdpa_supported), the larger SdpaLayout plus 256 bytes to align
// its start. On a GPU the backend passes whether cuDNN built the shape's graphs; a plan without
// one assumes it does (a shape the GPU's cuDNN rejects is then over-counted, never under).
int64_t attention_workspace_elems(const AttnDims& d, bool cudnn);

// Whether this build compiled the CUDA backend (LOMO_HAVE_CUDA), and cuDNN's fused attention in
// it (LOMO_HAVE_CUDNN_FRONTEND).
bool cuda_backend_built();
bool cudnn_attention_built();

}  // namespace lomo::cuda
