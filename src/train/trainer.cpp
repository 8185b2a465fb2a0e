#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/error.h"
#include "dist/reducing_sink.h"
#include "optim/lora_sink.h"

namespace lomo {

OptimizerKind parse_optimizer(const std::string& s) {
  if (s == "lomo") return OptimizerKind::Lomo;
  if (s == "adalomo") return OptimizerKind::AdaLomo;
  if (s == "sgd") return OptimizerKind::Sgd;
  if (s == "adamw") return OptimizerKind::AdamW;
  throw Error("--optimizer: unknown optimizer \"" + s + "\" (lomo, adalomo, sgd, adamw)");
}

const char* optimizer_name(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::Lomo:
      return "lomo";
    case OptimizerKind::AdaLomo:
      return "adalomo";
    case OptimizerKind::Sgd:
      return "sgd";
    case OptimizerKind::AdamW:
      return "adamw";
  }
  return "?";
}

ZeroBufferRule zero_buffer_rule(const ZeroBufferInputs& in) {
  ZeroBufferRule r;
  r.fused_update = in.optimizer == OptimizerKind::Lomo && in.fused_gemm_update &&
                   !in.clip_grad_value && !in.data_parallel;
  r.no_buffer = r.fused_update && !in.clip_grad_norm && in.dtype != StorageDtype::F16;
  return r;
}

void check_lora_optimizer(OptimizerKind optimizer, StorageDtype dtype) {
  if (optimizer == OptimizerKind::Sgd || optimizer == OptimizerKind::AdamW) {
    throw Error("LoRA trains the base model with LOMO or AdaLomo inside backward (or not at all "
                "with --base-lr 0); --optimizer " + std::string(optimizer_name(optimizer)) +
                " would store every base gradient, which is what LOMO exists to avoid: use "
                "--optimizer lomo or adalomo");
  }
  if (dtype == StorageDtype::F16) {
    throw Error("LoRA with --dtype fp16 (dynamic loss scaling) is not implemented; use --dtype "
                "bf16 or fp32");
  }
}

void check_optimizer_storage(OptimizerKind optimizer, StorageDtype dtype) {
  if (dtype != StorageDtype::F32 &&
      (optimizer == OptimizerKind::Sgd || optimizer == OptimizerKind::AdamW)) {
    throw Error("--optimizer " + std::string(optimizer_name(optimizer)) +
                " with 16-bit parameters needs fp32 master weights, which are not implemented; use "
                "--dtype fp32, or --optimizer lomo / adalomo");
  }
}

ZeroBufferRule Trainer::zero_buffer() const {
  return zero_buffer_rule({.optimizer = opts_.optimizer,
                           .fused_gemm_update = opts_.fused_gemm_update,
                           .data_parallel = opts_.data_parallel != nullptr,
                           .clip_grad_value = opts_.clip_grad_value > 0,
                           .clip_grad_norm = opts_.clip_grad_norm > 0,
                           .dtype = fp16_ ? StorageDtype::F16 : StorageDtype::F32});
}

Checkpointing Trainer::checkpointing() const {
  Checkpointing c = opts_.checkpointing;
  if (reusable_ && zero_buffer().no_buffer) c.recompute_head = true;
  return c;
}

Trainer::Trainer(LlamaModel& model, const TrainOptions& opts, MemoryTracker& tracker)
    : model_(model), opts_(opts) {
  ModelParams& params = model.params();
  const bool half = std::any_of(params.all().begin(), params.all().end(),
                                [](const Param& p) { return p.dtype != StorageDtype::F32; });
  fp16_ = std::any_of(params.all().begin(), params.all().end(),
                      [](const Param& p) { return p.dtype == StorageDtype::F16; });
  loss_scale_ = opts.loss_scale_init;
  model.set_bf16_gemm(opts.bf16_gemm);
  model.set_activation_dtype(opts.activation_dtype);
  Backend& backend = model.backend();
  if (fp16_ && (loss_scale_ < 1 || !std::isfinite(loss_scale_))) {
    throw Error("--loss-scale-init must be a finite number ≥ 1");
  }
  check_optimizer_storage(opts.optimizer, half ? StorageDtype::BF16 : StorageDtype::F32);
  if (opts.lora != nullptr) {
    check_lora_optimizer(opts.optimizer, fp16_ ? StorageDtype::F16 : StorageDtype::F32);
    model.set_lora(opts.lora, opts.seed);
    lora_grads_ = std::make_unique<StoredGradients>(opts.lora->all(), tracker, backend);
    lora_adamw_ = std::make_unique<AdamW>(opts.lora->all(), AdamWConfig{}, tracker, backend);
    if (opts.base_frozen) return;  // no gradient of the base is ever computed
  }
  if (opts.shards != nullptr) {
    // Sharded (check_run_config refuses the rest first): the update sink's buffer is one shard's
    // gradient, the whole gradients are ShardGradients'.
    const bool adalomo = opts.optimizer == OptimizerKind::AdaLomo;
    if ((opts.optimizer != OptimizerKind::Lomo && !adalomo) || opts.lora != nullptr ||
        opts.data_parallel == nullptr) {
      throw Error("--parallel shard trains with --optimizer lomo or adalomo, without LoRA");
    }
    const int held = params.lm_head == nullptr ? params.embed->id : -1;
    // LOMO's update reads one shard's gradient; AdaLomo's the whole one, in ShardGradients.
    const std::vector<Param> none;
    reusable_ = std::make_unique<ReusableGradients>(adalomo ? none : opts.shards->shards(), -1,
                                                    tracker, backend);
    checks_ = std::make_unique<GradientChecks>(params.all().size(), tracker, backend);
    if (adalomo) adalomo_ = std::make_unique<AdaLomoStates>(params, tracker, backend);
    shard_grads_ = std::make_unique<ShardGradients>(params, held, opts.shards->ranks(), tracker,
                                                    backend);
    return;
  }
  if (opts.optimizer == OptimizerKind::Lomo || opts.optimizer == OptimizerKind::AdaLomo) {
    const int held = params.lm_head == nullptr ? params.embed->id : -1;
    reusable_ = std::make_unique<ReusableGradients>(params, held, tracker, backend,
                                                    zero_buffer().no_buffer);
    checks_ = std::make_unique<GradientChecks>(params.all().size(), tracker, backend);
    if (opts.optimizer == OptimizerKind::AdaLomo)
      adalomo_ = std::make_unique<AdaLomoStates>(params, tracker, backend);
  } else {
    stored_ = std::make_unique<StoredGradients>(params.all(), tracker, backend);
    if (opts.optimizer == OptimizerKind::AdamW) {
      adamw_ = std::make_unique<AdamW>(params.all(), AdamWConfig{}, tracker, backend);
    }
  }
}

namespace {

void check_loss(double loss, int64_t step) {
  if (!std::isfinite(loss)) {
    throw Error("step " + std::to_string(step) + ": the loss is " + std::to_string(loss) +
                "; training stopped before any update (lower --lr, or use --clip-grad-norm)");
  }
}

double clip_coefficient(double norm, double max_norm) {
  return std::min(1.0, max_norm / (norm + 1e-6));
}

}  // namespace

TrainerCounters Trainer::counters() const {
  TrainerCounters c;
  c.adalomo_steps = adalomo_t_;
  c.adamw_steps = adamw_ ? adamw_->steps() : lora_adamw_ ? lora_adamw_->steps() : 0;
  c.loss_scale = loss_scale_;
  c.clean_steps = clean_steps_;
  return c;
}

void Trainer::set_counters(const TrainerCounters& c) {
  adalomo_t_ = c.adalomo_steps;
  if (adamw_) adamw_->set_steps(c.adamw_steps);
  if (lora_adamw_) lora_adamw_->set_steps(c.adamw_steps);
  loss_scale_ = c.loss_scale;
  clean_steps_ = c.clean_steps;
}

std::vector<TrainerStateTensor> Trainer::state_tensors() {
  std::vector<TrainerStateTensor> out;
  for (const Param& p : model_.params().all()) {
    if (adamw_) {
      out.push_back({"adamw.m." + p.name, &adamw_->m(p.id)});
      out.push_back({"adamw.v." + p.name, &adamw_->v(p.id)});
    }
    if (adalomo_) out.push_back({"adalomo." + p.name, &adalomo_->state(p.id)});
  }
  if (opts_.lora != nullptr) {
    for (Param& p : opts_.lora->all()) {
      out.push_back({"lora." + p.name, &p.data});
      out.push_back({"adamw.m." + p.name, &lora_adamw_->m(p.id)});
      out.push_back({"adamw.v." + p.name, &lora_adamw_->v(p.id)});
    }
  }
  return out;
}

double Trainer::pass(const Batch& batch, GradSink* base, float grad_scale, bool norm_pass) {
  std::optional<LoraSink> lora;
  std::optional<ReducingSink> reduce;
  std::optional<ShardSink> shard;
  GradSink* sink = base;
  if (opts_.lora != nullptr) sink = &lora.emplace(base, *lora_grads_);
  if (opts_.shards != nullptr) {
    const ShardSink::Reduce reduce = norm_pass                    ? ShardSink::Reduce::Measure
                                     : opts_.optimizer == OptimizerKind::AdaLomo
                                         ? ShardSink::Reduce::UpdateWhole
                                         : ShardSink::Reduce::Scatter;
    sink = &shard.emplace(*sink, *opts_.shards, *shard_grads_, *opts_.data_parallel,
                          model_.backend(), reduce, &comm_seconds_);
  } else if (opts_.data_parallel != nullptr) {
    sink = &reduce.emplace(*sink, *opts_.data_parallel, &comm_seconds_);
  }
  const double loss = model_.forward_backward(batch, *sink, checkpointing(), grad_scale);
  return opts_.data_parallel != nullptr ? opts_.data_parallel->all_reduce_sum(loss) : loss;
}

double Trainer::adapter_sum_squares(int64_t step_index) {
  Backend& be = model_.backend();
  double s = 0;
  for (const Param& p : opts_.lora->all()) {
    float* g = lora_grads_->buffer_for(p);  // (numel)
    // Before any update (pass 2 of clipping would otherwise run on a NaN norm, unclipped).
    check_finite(be, g, p.numel(), p.name, step_index);
    be.clip_by_value(g, p.numel(), opts_.clip_grad_value);
    s += be.sum_squares(g, p.numel());
  }
  return s;
}

void Trainer::step_adapters(double adapter_lr, double grad_coef, int64_t step_index) {
  LomoUpdate u;
  u.lr = static_cast<float>(adapter_lr);
  u.weight_decay = opts_.lora_weight_decay;
  u.clip_value = opts_.clip_grad_value;
  u.grad_coef = static_cast<float>(grad_coef);
  u.step = step_index;
  PhaseTimer t(model_.profile(), Phase::Update);
  lora_adamw_->step(opts_.lora->all(), *lora_grads_, u);
}

void Trainer::check_update_pass(int64_t step_index) {
  const GradientChecks::Result c = checks_->read();
  if (!c.first_bad.empty()) throw nonfinite_gradient(step_index, c.first_bad);
}

StepResult Trainer::step(const Batch& batch, double lr, int64_t step_index, double adapter_lr) {
  comm_seconds_ = 0;
  try {
    if (opts_.lora == nullptr) {
      StepResult r = run_step(batch, lr, step_index);
      r.comm_seconds = comm_seconds_;
      return r;
    }
    model_.set_lora_step(step_index);
    StepResult r = run_step(batch, lr, step_index);
    step_adapters(adapter_lr, r.clip_coef, step_index);
    return r;
  } catch (const NonFiniteError& e) {
    const std::string msg = e.what();
    if (msg.rfind("step ", 0) == 0) throw;
    throw NonFiniteError("step " + std::to_string(step_index) + ": " + msg);
  }
}

StepResult Trainer::run_step(const Batch& batch, double lr, int64_t step_index) {
  StepResult r;
  LomoUpdate u;
  u.lr = static_cast<float>(lr);
  u.weight_decay = opts_.weight_decay;
  u.clip_value = opts_.clip_grad_value;
  u.decay_norms_and_biases = opts_.decay_norms_and_biases;
  u.fused_linear = zero_buffer().fused_update;
  u.fused_all = zero_buffer().no_buffer;
  u.step = step_index;
  u.rounding.rounding = opts_.rounding;
  u.rounding.seed = opts_.seed;

  if (fp16_) return run_fp16_step(batch, u, step_index);
  if (opts_.lora != nullptr && opts_.base_frozen) {
    // Plain LoRA: one backward, the adapters' gradients kept; step_adapters() updates them.
    r.loss = pass(batch, nullptr);
    check_loss(r.loss, step_index);
    if (opts_.clip_grad_norm > 0) {
      r.grad_norm = std::sqrt(adapter_sum_squares(step_index));
      r.clip_coef = clip_coefficient(r.grad_norm, opts_.clip_grad_norm);
    }
    return r;
  }
  if (opts_.optimizer == OptimizerKind::Lomo || opts_.optimizer == OptimizerKind::AdaLomo) {
    if (opts_.clip_grad_norm > 0) {
      NormSink norm_sink(*reusable_, *checks_, opts_.clip_grad_value);
      r.loss = pass(batch, &norm_sink, 1.0f, true);
      check_loss(r.loss, step_index);
      if (!norm_sink.first_nonfinite().empty()) {
        throw Error("step " + std::to_string(step_index) + ": the gradient of " +
                    norm_sink.first_nonfinite() +
                    " contains inf or NaN; no parameter was updated; training stopped");
      }
      r.grad_norm = norm_sink.norm();
      // With LoRA the norm is over every trained tensor: the base's and the adapters'.
      if (opts_.lora != nullptr) {
        r.grad_norm = std::sqrt(r.grad_norm * r.grad_norm + adapter_sum_squares(step_index));
      }
      r.clip_coef = clip_coefficient(r.grad_norm, opts_.clip_grad_norm);
      u.grad_coef = static_cast<float>(r.clip_coef);
    }
    if (opts_.optimizer == OptimizerKind::AdaLomo) {
      u.step = ++adalomo_t_;  // β's t counts the updates made, from 1
      AdaLomoSink sink(*reusable_, *checks_, *adalomo_, u);
      r.loss = pass(batch, &sink);
    } else {
      LomoSink sink(*reusable_, *checks_, u);
      r.loss = pass(batch, &sink);
    }
    check_update_pass(step_index);
    check_loss(r.loss, step_index);
    return r;
  }

  StoreSink sink(*stored_);
  r.loss = pass(batch, &sink);
  check_loss(r.loss, step_index);
  if (opts_.clip_grad_norm > 0) {
    ModelParams& params = model_.params();
    for (auto& p : params.all()) {
      model_.backend().clip_by_value(stored_->buffer_for(p), p.numel(), u.clip_value);
    }
    u.clip_value = 0;  // applied once, above
    r.grad_norm = global_norm(params.all(), *stored_);
    r.clip_coef = clip_coefficient(r.grad_norm, opts_.clip_grad_norm);
    u.grad_coef = static_cast<float>(r.clip_coef);
  }
  PhaseTimer t(model_.profile(), Phase::Update);
  if (opts_.optimizer == OptimizerKind::Sgd) {
    sgd_step(model_.params().all(), *stored_, u);
  } else {
    adamw_->step(model_.params().all(), *stored_, u);
  }
  return r;
}

StepResult Trainer::run_fp16_step(const Batch& batch, LomoUpdate u, int64_t step_index) {
  StepResult r;
  const double S = loss_scale_;
  const auto Sf = static_cast<float>(S);
  if (u.clip_value > 0) u.clip_value *= Sf;  // the buffers hold S·g
  // Pass 1: scaled gradients into the norm sink; nothing is updated.
  NormSink norm_sink(*reusable_, *checks_, u.clip_value, 65504.0f);  // the largest finite fp16
  r.loss = pass(batch, &norm_sink, Sf, true);
  check_loss(r.loss, step_index);
  if (!norm_sink.first_nonfinite().empty()) {
    if (S <= 1.0) {
      throw NonFiniteError("step " + std::to_string(step_index) + ": the gradient of " +
                           norm_sink.first_nonfinite() +
                           " overflows even at loss scale 1, the minimum; training stopped");
    }
    loss_scale_ = std::max(1.0, S / 2);
    clean_steps_ = 0;
    r.skipped = true;
    r.loss_scale = loss_scale_;
    return r;
  }
  r.grad_norm = norm_sink.norm() / S;
  if (opts_.clip_grad_norm > 0) r.clip_coef = clip_coefficient(r.grad_norm, opts_.clip_grad_norm);
  u.grad_coef = static_cast<float>(r.clip_coef / S);
  // Pass 2: the update, on recomputed activations, with the gradients divided by S in fp32.
  if (opts_.optimizer == OptimizerKind::AdaLomo) {
    u.step = ++adalomo_t_;
    AdaLomoSink sink(*reusable_, *checks_, *adalomo_, u);
    r.loss = pass(batch, &sink, Sf);
  } else {
    LomoSink sink(*reusable_, *checks_, u);
    r.loss = pass(batch, &sink, Sf);
  }
  check_update_pass(step_index);
  if (++clean_steps_ >= opts_.loss_scale_window) {
    loss_scale_ = std::min(S * 2, 3.0e38);
    clean_steps_ = 0;
  }
  r.loss_scale = loss_scale_;
  return r;
}

}  // namespace lomo
