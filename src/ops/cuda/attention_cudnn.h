// Causal GQA attention through cuDNN's fused flash attention (SDPA), driven by NVIDIA's
// header-only cudnn-frontend graph API; compiled only when its headers were fetched
// (scripts/fetch_cudnn_frontend.sh, CMake's LOMO_CUDNN_FRONTEND_DIR), which defines
// LOMO_HAVE_CUDNN_FRONTEND. Shapes and the padding rule are ops/attention.h's; the hand-written
// fp32 kernels (attention.cu) stay the path for every shape this one does not take.
//
// Precision. cuDNN's flash kernels take fp16/bf16 q, k, v only. This path converts q, k, v
// (and dout) to bf16 in the workspace, lets cuDNN compute in fp32 (scores, softmax, the sums
// of P·V and of the gradients), and converts out, dq, dk and dv back to fp32. Results are
// therefore bf16-accurate, not fp32: the engine should take this path in its bf16 modes only
// (CudnnAttention::Use); an fp32 run keeps the fp32 kernels.
//
// Padding. cuDNN's padding mask (per-sequence lengths, the same tensor for queries and keys)
// excludes keys t ≥ lengths[b] and query rows t ≥ lengths[b]; on top of that the conversions
// write 0 for every padding row of q, k, v, dout on the way in and of out, dq, dk, dv on the
// way out, so the CPU's rule (out 0, no gradient) holds whatever cuDNN leaves in those rows.
//
// Statistics. Forward writes cuDNN's softmax statistic, the natural-log logsumexp of each query
// row's scaled scores, into the FIRST B·n_head·T floats of stats (B, n_head, T, 2): laid out
// (B, n_head, T), not interleaved with the CPU's pairs. Only this path's backward reads them,
// so forward and backward of one shape must both take this path (they do: the rule below
// depends on the shape and the GPU only, and the graphs of a shape are built together).
//
// Backward. cuDNN's backward needs O (for D = rowsum(dO ⊙ O)), which the op table's backward
// is not given; it runs the forward graph again into the workspace (one more forward, about a
// third of a backward's work) and then cuDNN's backward graph, deterministic (ordered dq sums)
// where cuDNN offers it.
//
// Graphs are built per shape (B, T, n_head, n_kv, head_dim) on first use and cached; building
// takes cuDNN's heuristics and possibly runtime compilation (tens of milliseconds to seconds),
// so the engine must call workspace_elems() for its shapes while planning memory, before
// step 1, never first inside a timed step.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>

#include "ops/attention.h"
#include "ops/cuda/device_plan.h"

namespace lomo::cuda {

// Which shapes this path takes: cudnn_sdpa_supported (device_plan.h), and cuDNN building both
// graphs within the planned workspace cap (cudnn_sdpa_workspace_cap).

enum class SdpaDirection { Forward, Backward };

// Builds the cudnn-frontend graph of one direction for `d` on sm `sm` (no GPU, no cuDNN
// handle: the SM version is given to the graph) and runs its validate(): the frontend's
// checks of shapes, strides, data types and the support surface for that SM. Returns "" when
// it validates, else the frontend's message. For tests and diagnostics.
std::string cudnn_sdpa_validate(const AttnDims& d, int sm, SdpaDirection dir);

class CudnnAttention {
 public:
  enum class Use { Off, Bf16 };
  // For the current CUDA device. No cuDNN call happens here: the handle is created on the
  // first graph build, so constructing one on a machine without a GPU is harmless (it then
  // takes nothing).
  explicit CudnnAttention(Use use);
  ~CudnnAttention();
  CudnnAttention(const CudnnAttention&) = delete;
  CudnnAttention& operator=(const CudnnAttention&) = delete;

  // Whether this path runs attention of shape `d`: Use::Bf16, the rule above for this GPU, and
  // cuDNN built both graphs (a shape cuDNN rejects is remembered and left to the fp32 kernels;
  // the reason is kept in last_rejection()). Builds and caches the graphs on first call.
  bool takes(const AttnDims& d);
  // fp32 elements of workspace forward and backward need for `d` (0 when !takes(d)):
  // attention_workspace_elems(d, true) of device_plan.h, its SdpaLayout with cuDNN's part at
  // the cap.
  int64_t workspace_elems(const AttnDims& d);
  // ops/backend.h's attention_forward and attention_backward, on `stream`; each returns false,
  // doing nothing, when !takes(d). `work` holds workspace_elems(d) floats (any alignment);
  // lengths (B) on the device, or null: every row is real. Forward OVERWRITES out and the
  // first B·n_head·T floats of stats; backward OVERWRITES dq, dk, dv.
  bool forward(cudaStream_t stream, float* out, float* stats, float* work, const float* q,
               const float* k, const float* v, const int32_t* lengths, const AttnDims& d);
  bool backward(cudaStream_t stream, float* dq, float* dk, float* dv, float* work,
                const float* dout, const float* stats, const float* q, const float* k,
                const float* v, const int32_t* lengths, const AttnDims& d);

  int sm() const { return sm_; }
  bool enabled() const { return use_ != Use::Off; }
  const std::string& last_rejection() const { return last_rejection_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Use use_;
  int sm_ = 0;
  std::string last_rejection_;
};

}  // namespace lomo::cuda
