#include "train/training_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/file.h"
#include "model/export.h"
#include "model/params.h"
#include "train/engine.h"
#include "train/evaluate.h"
#include "train/report.h"

namespace lomo {

TrainingRun::TrainingRun(RunConfig config, std::FILE* progress)
    : run_(std::move(config)), out_(progress) {
  LOMO_ASSERT(out_ != nullptr, "TrainingRun needs a progress stream");
}

TrainingRun::~TrainingRun() = default;

void TrainingRun::expect(Stage s, const char* call) const {
  LOMO_ASSERT(stage_ == s, std::string("TrainingRun::") + call + " called out of order");
}

// Config, tokenizer, data and the memory plan first: a run that cannot fit is refused before the
// weights are read. Everything a user can get wrong is checked before the first step.
void TrainingRun::prepare() {
  expect(Stage::New, "prepare");
  check_run_config(run_);
  if (run_.model_path.empty() || run_.data_path.empty() || run_.out_path.empty()) {
    throw Error("a training run needs a model, data and an output folder");
  }
  backend_ = make_run_backend(run_.threads);
  out_dir_ = std::make_unique<OutputDir>(run_.out_path);
  if (!run_.log_path.empty()) {
    log_.open(run_.log_path);
    if (!log_) throw Error(run_.log_path + ": cannot open the log file for writing");
  }
  // The limit is what was free before this run read anything.
  const size_t limit = run_memory_limit(run_);
  model_config_ = load_model_config(run_.model_path);
  seq_len_ = run_seq_len(run_, model_config_);
  tok_ = text::load_tokenizer(run_.model_path);
  const data::DataOptions dopts{seq_len_, &model_config_, tok_.get(), run_.task};
  data_ = data::load_dataset(run_.data_path, dopts);
  // Evaluation data: multiple-choice accuracy with a task, otherwise mean loss.
  if (!run_.eval_data_path.empty()) {
    if (run_.task) {
      if (!tok_) throw Error("--task needs a tokenizer in the model folder");
      eval_choices_ = data::load_choice_examples(run_.eval_data_path, *run_.task);
    } else {
      eval_set_ = data::load_dataset(run_.eval_data_path, dopts);
    }
  }
  const int64_t n = static_cast<int64_t>(data_.examples.size());
  const int64_t b = run_.batch_size;
  order_ = std::make_unique<BatchOrder>(n, b, run_.shuffle, run_.seed);
  total_steps_ = run_.steps ? *run_.steps : (run_.epochs.value_or(1) * n + b - 1) / b;
  eval_every_ = run_.eval_every.value_or(order_->steps_per_epoch());
  schedule_ = Schedule{run_.lr_schedule, run_.peak_lr(), run_.warmup_ratio, total_steps_};

  const ModelConfig& cfg = model_config_;
  std::fprintf(out_, "model   %s: %s, %d layers, d_model %lld, %lld parameters%s\n",
               run_.model_path.c_str(), arch_name(cfg.arch), static_cast<int>(cfg.n_layer),
               static_cast<long long>(cfg.d_model), static_cast<long long>(count_params(cfg)),
               cfg.tied_embeddings ? ", tied embeddings" : "");
  std::fprintf(out_, "data    %s: %lld sequences (%s)", run_.data_path.c_str(),
               static_cast<long long>(n),
               run_.task ? data::task_name(*run_.task) : data::format_name(data_.format));
  if (data_.truncated)
    std::fprintf(out_, ", %lld truncated to %lld tokens", static_cast<long long>(data_.truncated),
                 static_cast<long long>(seq_len_));
  if (data_.dropped)
    std::fprintf(out_, ", %lld dropped (no loss token left after truncation)",
                 static_cast<long long>(data_.dropped));
  std::fprintf(out_, "\n");
  if (tok_)
    std::fprintf(out_, "tokens  %s, vocabulary %lld\n", tok_->kind().c_str(),
                 static_cast<long long>(tok_->vocab_size()));
  std::fprintf(out_,
               "train   %s, lr %g (%s, warm-up %lld steps), %lld steps of %lld sequences, "
               "checkpointing %s, %d threads\n",
               optimizer_name(run_.optimizer), schedule_.lr, lr_schedule_name(run_.lr_schedule),
               static_cast<long long>(schedule_.warmup_steps()),
               static_cast<long long>(total_steps_), static_cast<long long>(b),
               checkpointing_mode_name(run_.checkpointing), backend_->threads());
  std::fflush(out_);
  plan_and_check(limit);
  stage_ = Stage::Prepared;
}

// The planner's prediction for the largest batch this run can see; refuses if it does not fit.
void TrainingRun::plan_and_check(size_t limit) {
  int64_t longest = 2;
  for (const auto& e : data_.examples)
    longest = std::max<int64_t>(longest, static_cast<int64_t>(e.ids.size()));
  plan_in_ = lomo::plan_input(run_, model_config_, longest, *backend_);
  plan_in_.checkpointing = fit_checkpointing(run_.checkpointing, plan_in_, limit);
  std::fprintf(out_, "ckpt    %s%s\n",
               run_.checkpointing == CheckpointingMode::Auto ? "auto: " : "",
               describe_checkpointing(plan_in_.checkpointing, model_config_.n_layer).c_str());
  plan_ = plan_memory(plan_in_);
  const MemoryPlan& p = plan_;
  std::fprintf(out_,
               "memory  predicted %s (parameters %s, gradients %s, states %s, activations %s, "
               "workspace %s)%s\n",
               format_bytes(p.total()).c_str(), format_bytes(p.parameters).c_str(),
               format_bytes(p.gradients).c_str(), format_bytes(p.optimizer_states).c_str(),
               format_bytes(p.activations).c_str(), format_bytes(p.workspace).c_str(),
               limit ? (", limit " + format_bytes(limit)).c_str() : "");
  std::fflush(out_);
  if (limit > 0 && p.total() > limit) {
    throw Error("this run needs about " + format_bytes(p.total()) + " but the memory limit is " +
                format_bytes(limit) + " (parameters " + format_bytes(p.parameters) +
                ", gradients " + format_bytes(p.gradients) + ", optimizer states " +
                format_bytes(p.optimizer_states) + ", activations " + format_bytes(p.activations) +
                "); try --optimizer lomo, --checkpointing on, a smaller --batch-size or "
                "--seq-len, or raise --memory-limit");
  }
}

void TrainingRun::load() {
  expect(Stage::Prepared, "load");
  model_ = std::make_unique<Model>(load_model(run_.model_path, tracker_, run_.dtype));
  net_ = make_model(model_config_, model_->params, tracker_, *backend_);
  trainer_ = make_trainer(*net_, train_options(run_, plan_in_.checkpointing), tracker_);
  // Timed steps only: evaluation passes between them stay out of the profile.
  if (run_.profile) profile_ = std::make_unique<StepProfile>();
  stage_ = Stage::Loaded;
}

void TrainingRun::log_json(const std::string& line) {
  if (log_.is_open()) log_ << line << "\n" << std::flush;
}

// Higher accuracy or lower loss is better; the first, best and last are kept.
void TrainingRun::evaluate(int64_t step) {
  if (run_.eval_data_path.empty()) return;
  nlohmann::ordered_json j;
  j["step"] = step;
  double v;
  bool better;
  TrainSummary& s = summary_;
  if (run_.task) {
    const ChoiceAccuracy a =
        evaluate_choices(*net_, *tok_, eval_choices_, run_.normalize, seq_len_);
    v = a.accuracy();
    better = std::isnan(s.best_eval) || v > s.best_eval;
    std::fprintf(out_, "eval    step %lld: accuracy %.4f (%lld/%lld)\n",
                 static_cast<long long>(step), v, static_cast<long long>(a.correct),
                 static_cast<long long>(a.labelled));
    j["eval_accuracy"] = v;
  } else {
    v = mean_loss(*net_, eval_set_.examples, run_.batch_size);
    better = std::isnan(s.best_eval) || v < s.best_eval;
    std::fprintf(out_, "eval    step %lld: loss %.4f\n", static_cast<long long>(step), v);
    j["eval_loss"] = v;
  }
  std::fflush(out_);
  if (better) {
    s.best_eval = v;
    s.best_eval_step = step;
  }
  s.last_eval = v;
  if (std::isnan(s.first_eval)) s.first_eval = v;
  log_json(j.dump());
}

const TrainSummary& TrainingRun::train() {
  expect(Stage::Loaded, "train");
  using clock = std::chrono::steady_clock;
  TrainSummary& s = summary_;
  evaluate(0);
  const auto t_start = clock::now();
  for (int64_t step = 0; step < total_steps_; ++step) {
    std::vector<Sequence> seqs;
    for (int64_t i : order_->indices(step)) seqs.push_back(data_.examples[i]);
    const Batch batch = make_batch(seqs);
    const double step_lr = schedule_.at(step);
    const auto t0 = clock::now();
    net_->set_profile(profile_.get());
    const StepResult r = trainer_->step(batch, step_lr, step + 1);
    net_->set_profile(nullptr);
    const double secs = std::chrono::duration<double>(clock::now() - t0).count();
    if (profile_) profile_->end_step(secs);
    int64_t tokens = 0;
    for (int32_t L : batch.lengths) tokens += L;
    s.tokens += tokens;
    s.steps = step + 1;
    if (step == 0) s.first_loss = r.loss;
    s.last_loss = r.loss;
    const double tps = tokens / std::max(secs, 1e-9);
    std::fprintf(out_, "step %lld/%lld  loss %.4f  lr %.3e  tok/s %.0f",
                 static_cast<long long>(step + 1), static_cast<long long>(total_steps_), r.loss,
                 step_lr, tps);
    if (r.grad_norm >= 0) std::fprintf(out_, "  grad_norm %.4f", r.grad_norm);
    if (r.loss_scale > 0) std::fprintf(out_, "  loss_scale %g", r.loss_scale);
    if (r.skipped)
      std::fprintf(out_, "  skipped: gradient overflow, nothing updated, loss scale halved");
    std::fprintf(out_, "\n");
    std::fflush(out_);
    nlohmann::ordered_json j;
    j["step"] = step + 1;
    j["loss"] = r.loss;
    j["lr"] = step_lr;
    j["tokens_per_s"] = tps;
    j["tokens"] = tokens;
    if (r.grad_norm >= 0) j["grad_norm"] = r.grad_norm;
    if (r.loss_scale > 0) j["loss_scale"] = r.loss_scale;
    if (r.skipped) j["skipped"] = true;
    log_json(j.dump());
    if ((step + 1) % eval_every_ == 0 || step + 1 == total_steps_) evaluate(step + 1);
  }
  s.seconds = std::chrono::duration<double>(clock::now() - t_start).count();
  if (profile_) std::fprintf(out_, "%s", profile_->table().c_str());
  std::fprintf(out_, "done    loss %.4f -> %.4f in %.1f s (%.0f tokens/s)\n", s.first_loss,
               s.last_loss, s.seconds, s.tokens / std::max(s.seconds, 1e-9));
  if (!run_.eval_data_path.empty()) {
    std::fprintf(out_, "eval    %s before training %.4f, after %.4f (best %.4f at step %lld)\n",
                 run_.task ? "accuracy" : "loss", s.first_eval, s.last_eval, s.best_eval,
                 static_cast<long long>(s.best_eval_step));
  }
  std::fprintf(out_, "%s", memory_table(tracker_).c_str());
  std::fflush(out_);
  stage_ = Stage::Trained;
  return summary_;
}

// The model (a Hugging Face folder, or model.gguf) and memory.json, into a staging folder that
// is renamed into place only when everything is written.
void TrainingRun::save() {
  expect(Stage::Trained, "save");
  out_dir_->create();
  if (run_.out_format == OutFormat::Gguf) {
    export_gguf(out_dir_->staging() + "/model.gguf", *model_, tok_.get(), run_.model_path,
                run_.export_type());
  } else {
    export_hf(out_dir_->staging(), *model_, tok_.get(), run_.model_path);
  }
  write_file_atomic(out_dir_->staging() + "/memory.json", memory_json(tracker_).dump(2) + "\n");
  out_dir_->commit();
  std::fprintf(out_, "saved   %s\n", run_.out_path.c_str());
  std::fflush(out_);
  stage_ = Stage::Saved;
}

}  // namespace lomo
