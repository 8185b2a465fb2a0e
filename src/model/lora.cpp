#include "model/lora.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"

namespace lomo {

namespace {

constexpr std::array<LoraTarget, kLoraTargetCount> kAllTargets = {
    LoraTarget::Q, LoraTarget::K, LoraTarget::V, LoraTarget::O,
    LoraTarget::Gate, LoraTarget::Up, LoraTarget::Down};

const char* short_name(LoraTarget t) {
  switch (t) {
    case LoraTarget::Q:
      return "q";
    case LoraTarget::K:
      return "k";
    case LoraTarget::V:
      return "v";
    case LoraTarget::O:
      return "o";
    case LoraTarget::Gate:
      return "gate";
    case LoraTarget::Up:
      return "up";
    case LoraTarget::Down:
      return "down";
  }
  return "?";
}

// Where the module sits in a block: self_attn.q_proj, mlp.up_proj, …
std::string module_path(LoraTarget t) {
  const bool attn = t == LoraTarget::Q || t == LoraTarget::K || t == LoraTarget::V ||
                    t == LoraTarget::O;
  return std::string(attn ? "self_attn." : "mlp.") + lora_target_module(t);
}

// Stream of the init RNG for adapter tensor `id` (distinct from rounding's streams).
constexpr uint64_t kInitStream = 0x4c6f5241ull << 16;  // "LoRA"

}  // namespace

const char* lora_target_module(LoraTarget t) {
  switch (t) {
    case LoraTarget::Q:
      return "q_proj";
    case LoraTarget::K:
      return "k_proj";
    case LoraTarget::V:
      return "v_proj";
    case LoraTarget::O:
      return "o_proj";
    case LoraTarget::Gate:
      return "gate_proj";
    case LoraTarget::Up:
      return "up_proj";
    case LoraTarget::Down:
      return "down_proj";
  }
  return "?";
}

std::vector<LoraTarget> parse_lora_targets(const std::string& list) {
  std::vector<LoraTarget> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    if (item == "all") {
      out.assign(kAllTargets.begin(), kAllTargets.end());
      continue;
    }
    bool found = false;
    for (LoraTarget t : kAllTargets) {
      if (item == short_name(t) || item == lora_target_module(t)) {
        if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
        found = true;
      }
    }
    if (!found) {
      throw Error("--lora-targets: \"" + item +
                  "\" is not a linear layer of a LLaMA-family block; the targets are q, k, v, o, "
                  "gate, up, down (or q_proj … down_proj, or all)");
    }
  }
  if (out.empty()) throw Error("--lora-targets: no target given (e.g. q,v or all)");
  // Block order, whatever order they were given in: files and reports list them the same way.
  std::sort(out.begin(), out.end());
  return out;
}

std::string lora_targets_string(const std::vector<LoraTarget>& targets) {
  std::string s;
  for (LoraTarget t : targets) s += (s.empty() ? "" : ",") + std::string(short_name(t));
  return s;
}

float LoraConfig::scaling() const {
  const auto r = static_cast<float>(rank);
  return rslora ? alpha / std::sqrt(r) : alpha / r;
}

std::array<int64_t, 2> lora_target_shape(const ModelConfig& c, LoraTarget t) {
  const int64_t d = c.d_model, qd = c.n_head * c.head_dim, kvd = c.n_kv * c.head_dim;
  switch (t) {
    case LoraTarget::Q:
      return {qd, d};
    case LoraTarget::K:
    case LoraTarget::V:
      return {kvd, d};
    case LoraTarget::O:
      return {d, qd};
    case LoraTarget::Gate:
    case LoraTarget::Up:
      return {c.d_ff, d};
    case LoraTarget::Down:
      return {d, c.d_ff};
  }
  return {0, 0};
}

int64_t lora_param_count(const LoraConfig& lora, const ModelConfig& c) {
  if (!lora.enabled()) return 0;
  int64_t per_layer = 0;
  for (LoraTarget t : lora.targets) {
    const auto [out, in] = lora_target_shape(c, t);
    per_layer += lora.rank * (in + out);
  }
  return per_layer * c.n_layer;
}

bool lora_targets_mlp(const LoraConfig& lora) {
  if (!lora.enabled()) return false;
  return std::any_of(lora.targets.begin(), lora.targets.end(), [](LoraTarget t) {
    return t == LoraTarget::Gate || t == LoraTarget::Up || t == LoraTarget::Down;
  });
}

int64_t lora_max_in(const LoraConfig& lora, const ModelConfig& c) {
  int64_t m = 0;
  for (LoraTarget t : lora.targets) m = std::max(m, lora_target_shape(c, t)[1]);
  return m;
}

void check_lora_config(const LoraConfig& lora, const ModelConfig& c) {
  if (lora.rank < 1) throw Error("--lora-rank must be at least 1 (got " + std::to_string(lora.rank) + ")");
  if (lora.targets.empty()) throw Error("--lora-targets: no target given (e.g. q,v or all)");
  for (LoraTarget t : lora.targets) {
    const auto [out, in] = lora_target_shape(c, t);
    if (lora.rank > std::min(out, in)) {
      throw Error("--lora-rank " + std::to_string(lora.rank) + " is larger than " +
                  lora_target_module(t) + " allows: its weight is " + std::to_string(out) + " × " +
                  std::to_string(in) + ", so the rank can be at most " +
                  std::to_string(std::min(out, in)));
    }
  }
  if (!(lora.alpha > 0) || !std::isfinite(lora.alpha)) {
    throw Error("--lora-alpha must be a positive number");
  }
  if (!(lora.dropout >= 0 && lora.dropout < 1)) {
    throw Error("--lora-dropout must be in [0, 1)");
  }
}

std::string peft_key(int64_t layer, LoraTarget t, bool is_a) {
  return "base_model.model.model.layers." + std::to_string(layer) + "." + module_path(t) +
         (is_a ? ".lora_A.weight" : ".lora_B.weight");
}

LoraAdapters::LoraAdapters(const LoraConfig& lora, const ModelConfig& c, MemoryTracker& tracker)
    : cfg_(lora) {
  check_lora_config(lora, c);
  all_.reserve(static_cast<size_t>(2 * c.n_layer) * lora.targets.size());
  std::vector<std::array<int, kLoraTargetCount>> index(
      static_cast<size_t>(c.n_layer), std::array<int, kLoraTargetCount>{});
  for (auto& row : index) row.fill(-1);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    for (LoraTarget t : lora.targets) {
      const auto [out, in] = lora_target_shape(c, t);
      index[l][static_cast<int>(t)] = static_cast<int>(all_.size());
      for (const bool is_a : {true, false}) {
        Param p;
        p.id = static_cast<int>(all_.size());
        p.name = peft_key(l, t, is_a);
        p.shape = is_a ? std::vector<int64_t>{lora.rank, in} : std::vector<int64_t>{out, lora.rank};
        p.role = ParamRole::Adapter;
        p.layer = l;
        p.group = 1;
        p.dtype = StorageDtype::F32;
        p.data = Buffer(tracker, MemCategory::Parameters, static_cast<size_t>(p.numel()) * 4);
        std::fill(p.data.f32(), p.data.f32() + p.numel(), 0.0f);
        all_.push_back(std::move(p));
      }
    }
  }
  // Pointers once all_ has stopped growing.
  layers_.resize(static_cast<size_t>(c.n_layer));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    for (int t = 0; t < kLoraTargetCount; ++t) {
      const int i = index[l][t];
      if (i >= 0) layers_[l][t] = {&all_[i], &all_[i + 1]};
    }
  }
}

void LoraAdapters::init(uint64_t seed) {
  for (const auto& layer : layers_) {
    for (const LoraAdapter& a : layer) {
      if (a.A == nullptr) continue;
      float* B = a.B->data.f32();  // (out, r)
      std::fill(B, B + a.B->numel(), 0.0f);
      float* A = a.A->data.f32();  // (r, in)
      const double bound = 1.0 / std::sqrt(static_cast<double>(a.A->shape[1]));
      const uint64_t stream = kInitStream + static_cast<uint64_t>(a.A->id);
      for (int64_t i = 0; i < a.A->numel(); ++i) {
        const double u = counter_uniform(seed, stream, static_cast<uint64_t>(i));
        A[i] = static_cast<float>((2 * u - 1) * bound);
      }
    }
  }
}

const LoraAdapter* LoraAdapters::find(int64_t layer, LoraTarget t) const {
  const LoraAdapter& a = layers_[static_cast<size_t>(layer)][static_cast<int>(t)];
  return a.A ? &a : nullptr;
}

int64_t LoraAdapters::total_numel() const {
  int64_t n = 0;
  for (const Param& p : all_) n += p.numel();
  return n;
}

Param& lora_base_weight(LayerParams& p, LoraTarget t) {
  switch (t) {
    case LoraTarget::Q:
      return *p.wq;
    case LoraTarget::K:
      return *p.wk;
    case LoraTarget::V:
      return *p.wv;
    case LoraTarget::O:
      return *p.wo;
    case LoraTarget::Gate:
      return *p.w_gate;
    case LoraTarget::Up:
      return *p.w_up;
    case LoraTarget::Down:
      return *p.w_down;
  }
  throw Error("unknown LoRA target");
}

void LoraAdapters::merge_into(ModelParams& params) const {
  const double s = cfg_.scaling();
  // Host loops: merging runs once, on the host copy the exporter writes from.
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (LoraTarget t : cfg_.targets) {
      const LoraAdapter& a = layers_[l][static_cast<int>(t)];
      Param& W = lora_base_weight(params.layers[l], t);
      const int64_t out = W.shape[0], in = W.shape[1], r = cfg_.rank;
      std::vector<float> w(static_cast<size_t>(out * in));  // (out, in)
      W.to_f32(w.data());
      const float* A = a.A->data.f32();  // (r, in)
      const float* B = a.B->data.f32();  // (out, r)
      std::vector<double> row(static_cast<size_t>(in));
      for (int64_t o = 0; o < out; ++o) {
        std::fill(row.begin(), row.end(), 0.0);
        for (int64_t k = 0; k < r; ++k) {
          const double b = B[o * r + k];
          for (int64_t i = 0; i < in; ++i) row[i] += b * A[k * in + i];
        }
        for (int64_t i = 0; i < in; ++i) w[o * in + i] = static_cast<float>(w[o * in + i] + s * row[i]);
      }
      W.from_f32(w.data());
    }
  }
}

}  // namespace lomo
