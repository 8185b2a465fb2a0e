#include "model/params.h"

#include <algorithm>

#include "core/error.h"
#include "core/half.h"
#include "ops/backend.h"

namespace lomo {

std::vector<ParamSpec> expected_params(const ModelConfig& c) {
  const int64_t d = c.d_model, q = c.n_head * c.head_dim, kv = c.n_kv * c.head_dim;
  std::vector<ParamSpec> s;
  using R = ParamRole;
  s.push_back({"model.embed_tokens.weight", {c.vocab, d}, R::Embedding, kOutsideBlocks});
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    s.push_back({p + "input_layernorm.weight", {d}, R::Norm, l});
    s.push_back({p + "self_attn.q_proj.weight", {q, d}, R::BlockLinear, l});
    if (c.qkv_bias) s.push_back({p + "self_attn.q_proj.bias", {q}, R::Bias, l});
    s.push_back({p + "self_attn.k_proj.weight", {kv, d}, R::BlockLinear, l});
    if (c.qkv_bias) s.push_back({p + "self_attn.k_proj.bias", {kv}, R::Bias, l});
    s.push_back({p + "self_attn.v_proj.weight", {kv, d}, R::BlockLinear, l});
    if (c.qkv_bias) s.push_back({p + "self_attn.v_proj.bias", {kv}, R::Bias, l});
    s.push_back({p + "self_attn.o_proj.weight", {d, q}, R::BlockLinear, l});
    if (c.o_bias) s.push_back({p + "self_attn.o_proj.bias", {d}, R::Bias, l});
    s.push_back({p + "post_attention_layernorm.weight", {d}, R::Norm, l});
    s.push_back({p + "mlp.gate_proj.weight", {c.d_ff, d}, R::BlockLinear, l});
    s.push_back({p + "mlp.up_proj.weight", {c.d_ff, d}, R::BlockLinear, l});
    s.push_back({p + "mlp.down_proj.weight", {d, c.d_ff}, R::BlockLinear, l});
  }
  s.push_back({"model.norm.weight", {d}, R::Norm, kOutsideBlocks});
  if (!c.tied_embeddings) {
    s.push_back({"lm_head.weight", {c.vocab, d}, R::LmHead, kOutsideBlocks});
  }
  return s;
}

int64_t spec_numel(const ParamSpec& s) {
  int64_t n = 1;
  for (int64_t v : s.shape) n *= v;
  return n;
}

int64_t count_params(const ModelConfig& c) {
  int64_t n = 0;
  for (const auto& s : expected_params(c)) n += spec_numel(s);
  return n;
}

int64_t Param::numel() const {
  int64_t n = 1;
  for (int64_t v : shape) n *= v;
  return n;
}

float* Param::f() {
  LOMO_ASSERT(dtype == StorageDtype::F32, name + " is not stored in fp32");
  return data.f32();
}

const float* Param::f() const {
  LOMO_ASSERT(dtype == StorageDtype::F32, name + " is not stored in fp32");
  return data.f32();
}

bool Param::on_host() const {
  return data.allocator() == nullptr || data.allocator()->device() == Device::host();
}

void Param::to_f32(float* dst) const { to_f32(dst, 0, numel()); }

void Param::to_f32(float* dst, int64_t begin, int64_t n) const {
  LOMO_ASSERT(on_host(), name + " is in device memory: read it through the backend");
  if (dtype == StorageDtype::F32) {
    std::copy(data.f32() + begin, data.f32() + begin + n, dst);
    return;
  }
  // Host loops for loading and saving; the training path converts through the backend.
  const uint16_t* src = h() + begin;
  if (dtype == StorageDtype::F16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
    return;
  }
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

void Param::from_f32(const float* src) { from_f32(src, 0, numel()); }

void Param::from_f32(const float* src, int64_t begin, int64_t n) {
  LOMO_ASSERT(on_host(), name + " is in device memory: write it through the backend");
  LOMO_ASSERT(begin >= 0 && n >= 0 && begin + n <= numel(), name + ": range outside the tensor");
  if (dtype == StorageDtype::F32) {
    std::copy(src, src + n, data.f32() + begin);
    return;
  }
  uint16_t* dst = h() + begin;
  if (dtype == StorageDtype::F16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]);
    return;
  }
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

void Param::from_f32(const float* src, Backend& backend) {
  if (on_host()) {
    from_f32(src);
    return;
  }
  const size_t n = static_cast<size_t>(numel());
  if (dtype == StorageDtype::F32) {
    backend.copy_to_device(data.as<void>(), src, n * sizeof(float));
    return;
  }
  std::vector<uint16_t> bits(n);
  for (size_t i = 0; i < n; ++i) {
    bits[i] = dtype == StorageDtype::F16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
  }
  backend.copy_to_device(data.as<void>(), bits.data(), n * sizeof(uint16_t));
}

ParamView Param::view() {
  ParamView v;
  v.data = data.as<void>();
  v.dtype = dtype;
  v.rows = shape.size() == 2 ? shape[0] : 1;
  v.cols = shape.size() == 2 ? shape[1] : numel();
  v.id = id;
  v.first = first;
  return v;
}

ModelParams::ModelParams(const ModelConfig& c, MemoryTracker& tracker, StorageDtype dtype,
                         Allocator& allocator) {
  const auto specs = expected_params(c);
  all_.reserve(specs.size());
  for (const auto& s : specs) {
    Param p;
    p.id = static_cast<int>(all_.size());
    p.name = s.name;
    p.shape = s.shape;
    p.role = s.role;
    p.layer = s.layer;
    p.dtype = s.shape.size() == 2 ? dtype : StorageDtype::F32;
    p.data = Buffer(allocator, tracker, MemCategory::Parameters,
                    static_cast<size_t>(p.numel()) * (p.dtype == StorageDtype::F32 ? 4 : 2));
    all_.push_back(std::move(p));
  }
  embed = find("model.embed_tokens.weight");
  final_norm = find("model.norm.weight");
  lm_head = c.tied_embeddings ? nullptr : find("lm_head.weight");
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerParams lp{};
    lp.attn_norm = find(p + "input_layernorm.weight");
    lp.wq = find(p + "self_attn.q_proj.weight");
    lp.wk = find(p + "self_attn.k_proj.weight");
    lp.wv = find(p + "self_attn.v_proj.weight");
    lp.wo = find(p + "self_attn.o_proj.weight");
    lp.bq = find(p + "self_attn.q_proj.bias");
    lp.bk = find(p + "self_attn.k_proj.bias");
    lp.bv = find(p + "self_attn.v_proj.bias");
    lp.bo = find(p + "self_attn.o_proj.bias");
    lp.mlp_norm = find(p + "post_attention_layernorm.weight");
    lp.w_gate = find(p + "mlp.gate_proj.weight");
    lp.w_up = find(p + "mlp.up_proj.weight");
    lp.w_down = find(p + "mlp.down_proj.weight");
    layers.push_back(lp);
  }
}

Param* ModelParams::find(const std::string& name) {
  for (auto& p : all_) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

int64_t ModelParams::total_numel() const {
  int64_t n = 0;
  for (const auto& p : all_) n += p.numel();
  return n;
}

int64_t ModelParams::largest_numel() const {
  int64_t n = 0;
  for (const auto& p : all_) n = std::max(n, p.numel());
  return n;
}

void ModelParams::move_to(Allocator& to, Backend& backend, MemoryTracker& tracker) {
  const bool to_host = to.device() == Device::host();
  for (Param& p : all_) {
    const Allocator* from = p.data.allocator();
    if (from != nullptr && from->device() == to.device()) continue;
    Buffer moved(to, tracker, MemCategory::Parameters, p.data.bytes());
    if (to_host) {
      backend.copy_to_host(moved.as<void>(), p.data.as<void>(), p.data.bytes());
    } else {
      backend.copy_to_device(moved.as<void>(), p.data.as<void>(), p.data.bytes());
    }
    p.data = std::move(moved);  // frees the old copy
  }
}

}  // namespace lomo
