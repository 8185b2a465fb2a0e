// Causal GQA attention through cuDNN's SDPA graphs: ops/cuda/attention_cudnn.h. Host code only
// (cudnn-frontend is C++ over cudnn.h); the conversions are ops/cuda/attention_cudnn_rows.cu.
//
// Layouts. Our q is (B, T, n_head, hd) row-major; cuDNN's SDPA tensors are logically
// (B, H, T, hd), so each is given as that logical shape with the strides of our storage:
// (T·H·hd, hd, H·hd, 1). k and v have H = n_kv heads (GQA: cuDNN maps query head h to kv head
// h / (n_head / n_kv), as ops/attention.h). The statistic (B, n_head, T, 1) is packed.
#include "ops/cuda/attention_cudnn.h"

#include <cudnn.h>

#include <cmath>
#include <map>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "ops/cuda/attention_cudnn_rows.h"
#include "ops/cuda/cuda_util.h"

// The frontend's JSON serialisation (of graphs, for its own cache files) is not used here;
// skipping it keeps its bundled nlohmann/json out of this translation unit.
#define CUDNN_FRONTEND_SKIP_JSON_LIB
#include <cudnn_frontend.h>

namespace lomo::cuda {

namespace fe = cudnn_frontend;
using Graph = fe::graph::Graph;
using TensorRef = std::shared_ptr<fe::graph::Tensor_attributes>;

namespace {

// The tensors' ids in a graph's variant pack (the uid → device pointer map of an execution).
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kSeqLen, kSeqLenKv, kDO, kDQ, kDK, kDV };

// A (B, heads, T, hd) bf16 view of our (B, T, heads, hd) rows.
TensorRef rows(Graph& g, const char* name, Uid uid, const AttnDims& d, int64_t heads) {
  const int64_t hd = d.head_dim;
  return g.tensor(fe::graph::Tensor_attributes()
                      .set_name(name)
                      .set_uid(uid)
                      .set_dim({d.B, heads, d.T, hd})
                      .set_stride({d.T * heads * hd, hd, heads * hd, 1})
                      .set_data_type(fe::DataType_t::BFLOAT16));
}
void as_rows(const TensorRef& t, Uid uid, const AttnDims& d, int64_t heads) {
  const int64_t hd = d.head_dim;
  t->set_output(true)
      .set_uid(uid)
      .set_dim({d.B, heads, d.T, hd})
      .set_stride({d.T * heads * hd, hd, heads * hd, 1})
      .set_data_type(fe::DataType_t::BFLOAT16);
}
// (B, 1, 1, 1) int32: the real rows of each sequence.
TensorRef seq_len(Graph& g, const char* name, Uid uid, const AttnDims& d) {
  return g.tensor(fe::graph::Tensor_attributes()
                      .set_name(name)
                      .set_uid(uid)
                      .set_dim({d.B, 1, 1, 1})
                      .set_stride({1, 1, 1, 1})
                      .set_data_type(fe::DataType_t::INT32));
}
// (B, n_head, T, 1) fp32: the logsumexp of each query row.
TensorRef stats_tensor(Graph& g, const AttnDims& d) {
  return g.tensor(fe::graph::Tensor_attributes()
                      .set_name("stats")
                      .set_uid(kStats)
                      .set_dim({d.B, d.n_head, d.T, 1})
                      .set_stride({d.n_head * d.T, d.T, 1, 1})
                      .set_data_type(fe::DataType_t::FLOAT));
}

std::shared_ptr<Graph> new_graph(int sm) {
  auto g = std::make_shared<Graph>();
  g->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT)
      .set_sm_version(sm);
  return g;
}

float attn_scale(const AttnDims& d) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(d.head_dim)));
}

// out = softmax(q·kᵀ·scale, causal, padded) · v, and the statistic.
std::shared_ptr<Graph> forward_graph(const AttnDims& d, int sm) {
  auto g = new_graph(sm);
  auto q = rows(*g, "q", kQ, d, d.n_head);
  auto k = rows(*g, "k", kK, d, d.n_kv);
  auto v = rows(*g, "v", kV, d, d.n_kv);
  auto opts = fe::graph::SDPA_attributes()
                  .set_name("attention_forward")
                  .set_generate_stats(true)
                  .set_attn_scale(attn_scale(d))
                  .set_causal_mask(true)
                  .set_padding_mask(true)
                  .set_seq_len_q(seq_len(*g, "seq_len_q", kSeqLen, d))
                  .set_seq_len_kv(seq_len(*g, "seq_len_kv", kSeqLenKv, d));
  auto [o, stats] = g->sdpa(q, k, v, opts);
  as_rows(o, kO, d, d.n_head);
  stats->set_output(true)
      .set_uid(kStats)
      .set_dim({d.B, d.n_head, d.T, 1})
      .set_stride({d.n_head * d.T, d.T, 1, 1})
      .set_data_type(fe::DataType_t::FLOAT);
  return g;
}

// dq, dk, dv from dout, with O and the statistic of the forward.
std::shared_ptr<Graph> backward_graph(const AttnDims& d, int sm) {
  auto g = new_graph(sm);
  auto q = rows(*g, "q", kQ, d, d.n_head);
  auto k = rows(*g, "k", kK, d, d.n_kv);
  auto v = rows(*g, "v", kV, d, d.n_kv);
  auto o = rows(*g, "o", kO, d, d.n_head);
  auto dout = rows(*g, "dout", kDO, d, d.n_head);
  auto stats = stats_tensor(*g, d);
  auto opts = fe::graph::SDPA_backward_attributes()
                  .set_name("attention_backward")
                  .set_attn_scale(attn_scale(d))
                  .set_causal_mask(true)
                  .set_padding_mask(true)
                  .set_seq_len_q(seq_len(*g, "seq_len_q", kSeqLen, d))
                  .set_seq_len_kv(seq_len(*g, "seq_len_kv", kSeqLenKv, d))
                  .set_deterministic_algorithm(true);
  auto [dq, dk, dv] = g->sdpa_backward(q, k, v, o, dout, stats, opts);
  as_rows(dq, kDQ, d, d.n_head);
  as_rows(dk, kDK, d, d.n_kv);
  as_rows(dv, kDV, d, d.n_kv);
  return g;
}

std::shared_ptr<Graph> graph_for(const AttnDims& d, int sm, SdpaDirection dir) {
  return dir == SdpaDirection::Forward ? forward_graph(d, sm) : backward_graph(d, sm);
}

using ShapeKey = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>;
ShapeKey key_of(const AttnDims& d) {
  return {d.B, d.T, d.n_head, d.n_kv, d.head_dim};
}

}  // namespace

std::string cudnn_sdpa_validate(const AttnDims& d, int sm, SdpaDirection dir) {
  auto g = graph_for(d, sm, dir);
  auto status = g->validate();
  return status.is_good() ? std::string{} : status.get_message();
}

struct CudnnAttention::Impl {
  struct Plans {
    bool ok = false;  // false: cuDNN rejected the shape; the fp32 kernels run it
    std::shared_ptr<Graph> fwd, bwd;
  };
  cudnnHandle_t handle = nullptr;
  std::map<ShapeKey, Plans> plans;

  ~Impl() {
    if (handle != nullptr) cudnnDestroy(handle);
  }
  // cuDNN runs on the handle's stream: the caller's, for this call.
  void bind(cudaStream_t stream) {
    const cudnnStatus_t s = cudnnSetStream(handle, stream);
    if (s != CUDNN_STATUS_SUCCESS) {
      throw Error(std::string("cuDNN attention: cudnnSetStream failed: ") + cudnnGetErrorString(s));
    }
  }
  void ensure_handle() {
    if (handle != nullptr) return;
    const cudnnStatus_t s = cudnnCreate(&handle);
    if (s != CUDNN_STATUS_SUCCESS) {
      handle = nullptr;
      throw Error(std::string("cuDNN attention: cudnnCreate failed: ") + cudnnGetErrorString(s));
    }
  }
};

CudnnAttention::CudnnAttention(Use use) : impl_(std::make_unique<Impl>()), use_(use) {
  int device = 0, major = 0, minor = 0;
  if (cudaGetDevice(&device) == cudaSuccess &&
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) == cudaSuccess) {
    sm_ = major * 10 + minor;
  } else {
    (void)cudaGetLastError();  // no GPU: sm 0, nothing is taken
    sm_ = 0;
  }
}

CudnnAttention::~CudnnAttention() = default;

bool CudnnAttention::takes(const AttnDims& d) {
  if (use_ == Use::Off || !cudnn_sdpa_supported(d, sm_)) return false;
  auto [it, fresh] = impl_->plans.try_emplace(key_of(d));
  Impl::Plans& p = it->second;
  if (!fresh) return p.ok;
  impl_->ensure_handle();
  const auto build = [&](SdpaDirection dir) -> std::shared_ptr<Graph> {
    auto g = graph_for(d, sm_, dir);
    // Graph::build's steps, with the engine configurations that need more workspace than the
    // planned cap (device_plan.h) deselected before the supported one is chosen.
    auto s = g->validate();
    if (s.is_good()) s = g->build_operation_graph(impl_->handle);
    if (s.is_good()) s = g->create_execution_plans({fe::HeurMode_t::A});
    if (s.is_good()) {
      // The filter sees the engine's workspace only; the frontend adds its own (the backward's
      // fp32 row sums and, for padding masks, two int32 per sequence), checked after the build.
      const size_t frontend = 4 * static_cast<size_t>(d.B * d.n_head * d.T) + 8 * d.B;
      g->deselect_workspace_greater_than(
          static_cast<int64_t>(cudnn_sdpa_workspace_cap(d) - frontend));
      s = g->check_support();
    }
    if (s.is_good()) s = g->build_plans();
    if (s.is_bad()) {
      last_rejection_ = std::string(dir == SdpaDirection::Forward ? "forward" : "backward") +
                        " (B " + std::to_string(d.B) + ", T " + std::to_string(d.T) + ", n_head " +
                        std::to_string(d.n_head) + ", n_kv " + std::to_string(d.n_kv) +
                        ", head_dim " + std::to_string(d.head_dim) + "): " + s.get_message();
      return nullptr;
    }
    return g;
  };
  p.fwd = build(SdpaDirection::Forward);
  if (p.fwd != nullptr) p.bwd = build(SdpaDirection::Backward);
  if (p.fwd == nullptr || p.bwd == nullptr) return false;
  int64_t fwd_bytes = 0, bwd_bytes = 0;
  if (p.fwd->get_workspace_size(fwd_bytes).is_bad() ||
      p.bwd->get_workspace_size(bwd_bytes).is_bad()) {
    last_rejection_ = "cuDNN attention: no workspace size for a built graph";
    return false;
  }
  const size_t need = static_cast<size_t>(std::max(fwd_bytes, bwd_bytes));
  if (need > cudnn_sdpa_workspace_cap(d)) {  // the frontend's part was larger than foreseen
    last_rejection_ = "cuDNN attention: the built graphs want " + std::to_string(need) +
                      " bytes of workspace, over the planned cap of " +
                      std::to_string(cudnn_sdpa_workspace_cap(d));
    return false;
  }
  p.ok = true;
  return true;
}

int64_t CudnnAttention::workspace_elems(const AttnDims& d) {
  if (!takes(d)) return 0;
  return attention_workspace_elems(d, true);
}

namespace {

char* aligned(float* work) {
  const auto at = reinterpret_cast<uintptr_t>(work);
  return reinterpret_cast<char*>((at + 255) / 256 * 256);
}

void run(Graph& g, cudnnHandle_t handle, std::unordered_map<int64_t, void*>& pack, void* workspace,
         const char* what) {
  auto s = g.execute(handle, pack, workspace);
  if (s.is_bad()) throw Error(std::string("cuDNN attention ") + what + ": " + s.get_message());
}

}  // namespace

bool CudnnAttention::forward(cudaStream_t stream, float* out, float* stats, float* work,
                             const float* q, const float* k, const float* v, const int32_t* lengths,
                             const AttnDims& d) {
  if (!takes(d)) return false;
  const Impl::Plans& p = impl_->plans.at(key_of(d));
  char* base = aligned(work);
  const SdpaLayout at(d);
  const auto bf16 = [&](size_t offset) { return reinterpret_cast<uint16_t*>(base + offset); };
  const int64_t q_row = d.n_head * d.head_dim, kv_row = d.n_kv * d.head_dim;
  rows_to_bf16(bf16(at.q), q, lengths, d.B, d.T, q_row, stream);   // (B, T, n_head, hd)
  rows_to_bf16(bf16(at.k), k, lengths, d.B, d.T, kv_row, stream);  // (B, T, n_kv, hd)
  rows_to_bf16(bf16(at.v), v, lengths, d.B, d.T, kv_row, stream);  // (B, T, n_kv, hd)
  auto* seq = reinterpret_cast<int32_t*>(base + at.seq);           // (B)
  sequence_lengths(seq, lengths, d.B, d.T, stream);
  impl_->bind(stream);
  std::unordered_map<int64_t, void*> pack{{kQ, bf16(at.q)}, {kK, bf16(at.k)}, {kV, bf16(at.v)},
                                          {kO, bf16(at.o)}, {kStats, stats},  {kSeqLen, seq},
                                          {kSeqLenKv, seq}};
  run(*p.fwd, impl_->handle, pack, base + at.cudnn, "forward");
  rows_from_bf16(out, bf16(at.o), lengths, d.B, d.T, q_row, stream);  // (B, T, n_head, hd)
  return true;
}

bool CudnnAttention::backward(cudaStream_t stream, float* dq, float* dk, float* dv, float* work,
                              const float* dout, const float* stats, const float* q, const float* k,
                              const float* v, const int32_t* lengths, const AttnDims& d) {
  if (!takes(d)) return false;
  const Impl::Plans& p = impl_->plans.at(key_of(d));
  char* base = aligned(work);
  const SdpaLayout at(d);
  const auto bf16 = [&](size_t offset) { return reinterpret_cast<uint16_t*>(base + offset); };
  const int64_t q_row = d.n_head * d.head_dim, kv_row = d.n_kv * d.head_dim;
  rows_to_bf16(bf16(at.q), q, lengths, d.B, d.T, q_row, stream);
  rows_to_bf16(bf16(at.k), k, lengths, d.B, d.T, kv_row, stream);
  rows_to_bf16(bf16(at.v), v, lengths, d.B, d.T, kv_row, stream);
  rows_to_bf16(bf16(at.dout), dout, lengths, d.B, d.T, q_row, stream);
  auto* seq = reinterpret_cast<int32_t*>(base + at.seq);
  sequence_lengths(seq, lengths, d.B, d.T, stream);
  impl_->bind(stream);
  // In the forward pass this was: o = SDPA(q, k, v), stats = logsumexp. O is not kept between
  // the passes, so the forward runs again into the workspace; its statistic goes to scratch
  // (bit for bit the saved one: same graph, same inputs) and the saved one feeds the backward.
  float* scratch_stats = reinterpret_cast<float*>(base + at.stats);  // (B, n_head, T)
  std::unordered_map<int64_t, void*> fwd{
      {kQ, bf16(at.q)},        {kK, bf16(at.k)}, {kV, bf16(at.v)}, {kO, bf16(at.o)},
      {kStats, scratch_stats}, {kSeqLen, seq},   {kSeqLenKv, seq}};
  run(*p.fwd, impl_->handle, fwd, base + at.cudnn, "backward (forward again for O)");
  // cuDNN only reads the statistic; the variant pack's pointers are not const.
  std::unordered_map<int64_t, void*> bwd{
      {kQ, bf16(at.q)},   {kK, bf16(at.k)},     {kV, bf16(at.v)},
      {kO, bf16(at.o)},   {kDO, bf16(at.dout)}, {kStats, const_cast<float*>(stats)},
      {kDQ, bf16(at.dq)}, {kDK, bf16(at.dk)},   {kDV, bf16(at.dv)},
      {kSeqLen, seq},     {kSeqLenKv, seq}};
  run(*p.bwd, impl_->handle, bwd, base + at.cudnn, "backward");
  rows_from_bf16(dq, bf16(at.dq), lengths, d.B, d.T, q_row, stream);   // (B, T, n_head, hd)
  rows_from_bf16(dk, bf16(at.dk), lengths, d.B, d.T, kv_row, stream);  // (B, T, n_kv, hd)
  rows_from_bf16(dv, bf16(at.dv), lengths, d.B, d.T, kv_row, stream);  // (B, T, n_kv, hd)
  return true;
}

}  // namespace lomo::cuda
