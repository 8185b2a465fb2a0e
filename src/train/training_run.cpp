#include "train/training_run.h"

#include <algorithm>
#include <chrono>
#include <unistd.h>

#include <cmath>
#include <thread>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "dist/batch_share.h"
#include "dist/replicas.h"
#include "io/file.h"
#include "model/export.h"
#include "model/init.h"
#include "model/loader.h"
#include "model/lora_files.h"
#include "model/params.h"
#include "train/engine.h"
#include "train/evaluate.h"
#include "train/report.h"
#include "train/step_line.h"

namespace lomo {

TrainingRun::TrainingRun(RunConfig config, std::FILE* progress)
    : run_(std::move(config)), out_(progress), line_(progress, is_live_terminal(progress)) {
  LOMO_ASSERT(out_ != nullptr, "TrainingRun needs a progress stream");
  own_world_ = World::alone();
  world_ = own_world_.get();
}

void TrainingRun::set_world(World& world) {
  expect(Stage::New, "set_world");
  world_ = &world;
  run_.ranks = world.size();
}

TrainingRun::~TrainingRun() {
  // A checkpoint folder this run made and never wrote into goes (a failed run leaves nothing).
  if (made_checkpoint_dir_) {
    std::error_code ec;
    if (std::filesystem::is_empty(checkpoint_dir_, ec)) std::filesystem::remove(checkpoint_dir_, ec);
  }
}

// The checkpoint folder (written into on --save-every and on a stop request) is made or proven
// writable now; a resumed run's checkpoint is found and checked against this run's settings.
void TrainingRun::prepare_checkpoints() {
  namespace fs = std::filesystem;
  checkpoint_dir_ = run_.checkpoints();
  std::error_code ec;
  if (!is_root()) {
    // Rank 0 alone makes and writes the folder; every rank reads a checkpoint it resumes from.
  } else if (!fs::exists(checkpoint_dir_, ec)) {
    fs::create_directories(checkpoint_dir_, ec);
    if (ec) {
      throw Error(checkpoint_dir_ + ": cannot create the checkpoint folder: " + ec.message() +
                  " (choose another --checkpoint-dir)");
    }
    made_checkpoint_dir_ = true;
  } else if (!fs::is_directory(checkpoint_dir_, ec) || ::access(checkpoint_dir_.c_str(), W_OK)) {
    throw Error(checkpoint_dir_ + ": not a writable folder for checkpoints (choose another "
                                  "--checkpoint-dir)");
  }
  identity_ = run_identity(run_, seq_len_, file_digest(run_.data_path));
  if (run_.resume_path.empty()) {
    // A new run would interleave its checkpoints with an earlier run's (and pruning by step
    // would delete the new ones): refuse, saying what to do.
    std::string earlier;
    try {
      earlier = resolve_checkpoint(checkpoint_dir_);
    } catch (const Error&) {
    }
    if (!earlier.empty()) {
      throw Error(checkpoint_dir_ + " holds checkpoints of an earlier run (newest: " + earlier +
                  "); continue it with --resume " + checkpoint_dir_ +
                  ", or choose another --checkpoint-dir or --out");
    }
    return;
  }
  resume_from_ = resolve_checkpoint(run_.resume_path);
  resume_meta_ = read_checkpoint_meta(resume_from_);
  const auto diffs = identity_differences(resume_meta_.identity, identity_);
  if (!diffs.empty()) {
    std::string msg = "cannot resume from " + resume_from_ +
                      ": settings that decide the result differ from the run that wrote it:";
    for (const auto& d : diffs) msg += "\n  " + d;
    throw Error(msg + "\ngive the same values (only --steps/--epochs may grow), or start a new run");
  }
  if (resume_meta_.step > total_steps_) {
    throw Error("cannot resume from " + resume_from_ + ": it is at step " +
                std::to_string(resume_meta_.step) + ", beyond this run's " +
                std::to_string(total_steps_) + " steps (--steps/--epochs may grow, not shrink)");
  }
  start_step_ = resume_meta_.step;
}

void TrainingRun::save_checkpoint(int64_t step) {
  if (shards_) {
    // Every rank gathers the whole model (a collective), rank 0 writes it: a checkpoint of a
    // sharded run is an ordinary one, and resumes at any number of ranks.
    shards_->gather_all();
    if (is_root()) write_checkpoint_now(step);
    shards_->release_all();
    return;
  }
  if (is_root()) write_checkpoint_now(step);  // the replicas are identical: rank 0 writes them
}

void TrainingRun::write_checkpoint_now(int64_t step) {
  CheckpointMeta m;
  m.step = step;
  m.counters = trainer_->counters();
  m.recompute_head = plan_in_.checkpointing.recompute_head;
  m.identity = identity_;
  const TrainSummary& s = summary_;
  m.summary = {{"first_loss", s.first_loss},  {"tokens", s.tokens},
               {"first_eval", s.first_eval},  {"best_eval", s.best_eval},
               {"best_eval_step", s.best_eval_step}};
  summary_.last_checkpoint = write_checkpoint(checkpoint_dir_, m, model_->params, *trainer_);
  prune_checkpoints(checkpoint_dir_, run_.keep);
  line_.end();
  std::fprintf(out_, "save    checkpoint at step %lld: %s\n", static_cast<long long>(step),
               summary_.last_checkpoint.c_str());
  std::fflush(out_);
}

void TrainingRun::expect(Stage s, const char* call) const {
  LOMO_ASSERT(stage_ == s, std::string("TrainingRun::") + call + " called out of order");
}

namespace {

// Bytes the saved model takes: every 2-D tensor in the output's type, 1-D tensors in fp32; with
// LoRA the adapters (fp32) too, and only they for plain LoRA without --merge.
size_t output_bytes(const ModelConfig& c, const RunConfig& run) {
  size_t bytes = 0;
  if (run.uses_lora()) {
    bytes += 4 * static_cast<size_t>(lora_param_count(run.lora_config(), c));
    if (run.base_frozen() && !run.merge) return bytes;
  }
  for (const auto& s : expected_params(c)) {
    const auto n = static_cast<size_t>(spec_numel(s));
    if (s.shape.size() != 2) {
      bytes += 4 * n;
    } else if (run.out_format == OutFormat::Gguf) {
      const GgmlType t = run.export_type();
      bytes += n / static_cast<size_t>(ggml_block_size(t)) * static_cast<size_t>(ggml_block_bytes(t));
    } else {
      bytes += n * dtype_bytes(run.dtype);
    }
  }
  return bytes;
}

}  // namespace

// Config, tokenizer, data and the memory plan first: a run that cannot fit is refused before the
// weights are read. Everything a user can get wrong is checked before the first step.
void TrainingRun::prepare() {
  expect(Stage::New, "prepare");
  check_run_config(run_);
  const bool random = !run_.random_config_path.empty();
  if ((run_.model_path.empty() && !random) || run_.data_path.empty()) {
    throw Error("a training run needs a model (--model, or --random-init) and data (--data)");
  }
  if (run_.save && run_.out_path.empty()) {
    throw Error("give --out DIR, where the trained model goes (or --save off to write nothing)");
  }
  // Several ranks on one machine share its cores and memory: by default each takes its part, and
  // GPU ranks take a GPU each (cuda: the rank's index among the machine's ranks).
  const LaunchInfo& launch = world_->launch();
  int threads = run_.threads;
  if (threads == 0 && launch.local_size > 1) {
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / launch.local_size);
  }
  std::string device = run_.device;
  if (device == "cuda" && world_->size() > 1) device = "cuda:" + std::to_string(launch.local_rank);
  backend_ = make_run_backend(threads, device, run_.uses_bf16_gemm());
  if (is_root()) {
    if (run_.save) {
      out_dir_ = std::make_unique<OutputDir>(run_.out_path);
      out_dir_->create();  // written into at the end; proven writable now (removed on failure)
    }
    if (!run_.log_path.empty()) {
      log_.open(run_.log_path);
      if (!log_) throw Error(run_.log_path + ": cannot open the log file for writing");
    }
    if (!run_.log_dir.empty()) tensorboard_ = std::make_unique<TensorBoardLog>(run_.log_dir);
  }
  // The limit is what was free before this run read anything (host memory: this rank's part).
  size_t limit = run_memory_limit(run_, backend_.get());
  if (!run_.memory_limit && launch.local_size > 1 &&
      backend_->allocator().device() == Device::host()) {
    limit /= static_cast<size_t>(launch.local_size);
  }
  if (random) {
    if (!std::filesystem::is_regular_file(run_.random_config_path)) {
      throw Error("--random-init " + run_.random_config_path +
                  ": not a file (expected a Hugging Face config.json, e.g. configs/llama-7b.json)");
    }
    model_config_ = load_config(run_.random_config_path);
  } else {
    model_config_ = load_model_config(run_.model_path);
  }
  if (run_.uses_lora()) prepare_lora();
  // What save() will need, checked now rather than after the last step.
  if (run_.save && run_.out_format == OutFormat::Gguf) check_gguf_exportable(model_config_);
  if (is_root() && run_.save) out_dir_->require_space(output_bytes(model_config_, run_));
  seq_len_ = run_seq_len(run_, model_config_);
  if (!random) tok_ = text::load_tokenizer(run_.model_path);
  data::DataOptions dopts{seq_len_, &model_config_, tok_.get(), run_.task};
  dopts.model_path = run_.model_path;
  dopts.chat_template_file = run_.chat_template_path;
  dopts.chat_loss = run_.chat_loss;
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
  lora_schedule_ = Schedule{run_.lr_schedule, run_.lora_lr, run_.warmup_ratio, total_steps_};
  if (run_.save) prepare_checkpoints();

  const ModelConfig& cfg = model_config_;
  const std::string model_name =
      random ? "random (--random-init " + run_.random_config_path + ", seed " +
                   std::to_string(run_.seed) + ")"
             : run_.model_path;
  std::fprintf(out_, "model   %s: %s, %d layers, d_model %lld, %lld parameters%s\n",
               model_name.c_str(), arch_name(cfg.arch), static_cast<int>(cfg.n_layer),
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
               "train   %s, %s, lr %g (%s, warm-up %lld steps), %lld steps of %lld sequences, "
               "checkpointing %s, %d threads\n",
               // Plain LoRA: what is trained is the adapters, by AdamW at the adapters' rate.
               run_.base_frozen() ? "adamw on LoRA adapters (base frozen)"
                                  : optimizer_name(run_.optimizer),
               storage_dtype_name(run_.dtype),
               run_.base_frozen() ? lora_schedule_.lr : schedule_.lr,
               lr_schedule_name(run_.lr_schedule),
               static_cast<long long>(schedule_.warmup_steps()),
               static_cast<long long>(total_steps_), static_cast<long long>(b),
               checkpointing_mode_name(run_.checkpointing), backend_->threads());
  if (run_.uses_lora()) {
    const LoraConfig l = run_.lora_config();
    std::fprintf(out_,
                 "lora    rank %lld, alpha %g (scaling %g%s), targets %s, dropout %g: %lld adapter "
                 "parameters, AdamW lr %g; base %s\n",
                 static_cast<long long>(l.rank), l.alpha, l.scaling(), l.rslora ? ", rsLoRA" : "",
                 lora_targets_string(l.targets).c_str(), l.dropout,
                 static_cast<long long>(lora_param_count(l, model_config_)), run_.lora_lr,
                 run_.base_frozen() ? "frozen"
                                    : (std::string(optimizer_name(run_.optimizer)) + " lr " +
                                       std::to_string(run_.base_lr)).c_str());
    if (!run_.lora_resume_path.empty())
      std::fprintf(out_, "lora    adapters from %s\n", run_.lora_resume_path.c_str());
  }
  if (run_.parallel != ParallelMode::None) {
    const Share most = batch_share(b, 0, world_->size());
    const bool shard = run_.parallel == ParallelMode::Shard;
    std::fprintf(out_,
                 "ranks   %d (%s), %s: each runs %lld%s of the %lld sequences of a step on %s, "
                 "%s (%s)\n",
                 world_->size(), launcher_name(launch.launcher),
                 shard ? "parameters sharded" : "data parallel", static_cast<long long>(most.count),
                 b % world_->size() != 0 ? " or fewer" : "", static_cast<long long>(b),
                 backend_->name().c_str(),
                 shard ? "keeps 1/N of every tensor, gathers each layer to use it, and updates its "
                         "shard of each gradient reduce-scattered over the ranks"
                       : "gradients summed over the ranks",
                 world_->size() > 1 ? "MPI" : "one rank: no messages");
  }
  if (!resume_from_.empty()) {
    std::fprintf(out_, "resume  %s: step %lld of %lld\n", resume_from_.c_str(),
                 static_cast<long long>(start_step_), static_cast<long long>(total_steps_));
  }
  std::fflush(out_);
  plan_and_check(limit);
  stage_ = Stage::Prepared;
}

// LoRA's settings, checked against the model before any weight is read; with --lora-resume the
// adapter folder's rank, alpha, targets and rsLoRA setting, which flags given may not contradict.
void TrainingRun::prepare_lora() {
  if (!run_.lora_resume_path.empty()) {
    const LoraConfig saved = read_peft_adapter_config(run_.lora_resume_path);
    auto differs = [&](const std::string& flag, const std::string& given,
                       const std::string& in_folder) {
      throw Error("--" + flag + " " + given + " contradicts --lora-resume " +
                  run_.lora_resume_path + ", whose adapters have " + in_folder +
                  " (drop the flag: the folder's setting is used)");
    };
    if (run_.lora_rank > 0 && run_.lora_rank != saved.rank)
      differs("lora-rank", std::to_string(run_.lora_rank), "rank " + std::to_string(saved.rank));
    if (run_.lora_alpha && *run_.lora_alpha != saved.alpha)
      differs("lora-alpha", std::to_string(*run_.lora_alpha),
              "alpha " + std::to_string(saved.alpha));
    const std::string targets = lora_targets_string(saved.targets);
    if (run_.lora_targets && lora_targets_string(parse_lora_targets(*run_.lora_targets)) != targets)
      differs("lora-targets", *run_.lora_targets, "targets " + targets);
    if (run_.rslora && *run_.rslora != saved.rslora)
      differs("rslora", *run_.rslora ? "on" : "off",
              std::string("rsLoRA ") + (saved.rslora ? "on" : "off"));
    run_.lora_rank = saved.rank;
    run_.lora_alpha = saved.alpha;
    run_.lora_targets = targets;
    run_.rslora = saved.rslora;
  }
  check_lora_config(run_.lora_config(), model_config_);
  // The adapters' file too, before any weight is read: every tensor, its shape, finite values
  // (a few MiB, read again at load).
  if (!run_.lora_resume_path.empty()) {
    MemoryTracker scratch;
    LoraAdapters probe(run_.lora_config(), model_config_, scratch);
    load_peft_adapter(run_.lora_resume_path, probe);
  }
}

// The planner's prediction for the largest batch this run can see; refuses if it does not fit.
void TrainingRun::plan_and_check(size_t limit) {
  int64_t longest = 2;
  for (const auto& e : data_.examples)
    longest = std::max<int64_t>(longest, static_cast<int64_t>(e.ids.size()));
  plan_in_ = lomo::plan_input(run_, model_config_, longest, *backend_);
  plan_in_.checkpointing = fit_checkpointing(run_.checkpointing, plan_in_, limit);
  // The LM head's two schedules round differently: a resumed run keeps the one it had. (Which
  // blocks keep activations changes no bit: they are recomputed exactly.)
  if (!resume_from_.empty()) plan_in_.checkpointing.recompute_head = resume_meta_.recompute_head;
  std::fprintf(out_, "ckpt    %s%s\n",
               run_.checkpointing == CheckpointingMode::Auto ? "auto: " : "",
               describe_checkpointing(plan_in_.checkpointing, model_config_.n_layer).c_str());
  plan_ = plan_memory(plan_in_);
  const MemoryPlan& p = plan_;
  const std::string fit = limit == 0 ? ", no limit"
                          : ", limit " + format_bytes(limit) +
                                (p.total() <= limit ? ": fits" : ": does not fit");
  std::fprintf(out_,
               "memory  predicted %s (parameters %s, gradients %s, states %s, activations %s, "
               "workspace %s)%s\n",
               format_bytes(p.total()).c_str(), format_bytes(p.parameters).c_str(),
               format_bytes(p.gradients).c_str(), format_bytes(p.optimizer_states).c_str(),
               format_bytes(p.activations).c_str(), format_bytes(p.workspace).c_str(),
               fit.c_str());
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
  if (!run_.random_config_path.empty()) {
    // Made where the run computes, never in host memory (a GPU's for --device cuda).
    Progress progress(line_, "init", "parameters");
    model_ = std::make_unique<Model>(Model{
        model_config_, ModelParams(model_config_, tracker_, run_.dtype, backend_->allocator())});
    init_params_in_place(model_config_, model_->params, run_.seed, *backend_, tracker_,
                         progress.fn());
    progress.finish();
    // Init's fp32 scratch (the largest 16-bit tensor) is gone: the peaks report training's.
    tracker_.reset_peaks();
  } else {
    Progress progress(line_, "load", "parameters");
    model_ = std::make_unique<Model>(
        load_model(run_.model_path, tracker_, run_.dtype, progress.fn()));
    progress.finish();
  }
  // Loading reads into host memory; a GPU run moves the parameters into the GPU's now, before
  // the model takes its views of them. Sharded, only the shards ever go there (cut below).
  if (!(backend_->allocator().device() == Device::host()) && run_.parallel != ParallelMode::Shard) {
    model_->params.move_to(backend_->allocator(), *backend_, tracker_);
  }
  net_ = make_model(model_config_, model_->params, tracker_, *backend_, seq_len_);
  TrainOptions options = train_options(run_, plan_in_.checkpointing);
  if (run_.uses_lora()) {
    lora_ = std::make_unique<LoraAdapters>(run_.lora_config(), model_config_, tracker_);
    if (run_.lora_resume_path.empty()) {
      lora_->init(run_.seed);
    } else {
      load_peft_adapter(run_.lora_resume_path, *lora_);
    }
    options.lora = lora_.get();
  }
  if (run_.parallel != ParallelMode::None) {
    grad_comm_ = &world_->for_backend(*backend_);
    options.data_parallel = grad_comm_;
  }
  if (run_.parallel == ParallelMode::Shard) {
    shards_ = std::make_unique<ParamShards>(model_->params, *grad_comm_, tracker_, *backend_);
    options.shards = shards_.get();
  }
  trainer_ = make_trainer(*net_, options, tracker_);
  if (!resume_from_.empty()) {
    load_checkpoint_state(resume_from_, model_->params, *trainer_);
    trainer_->set_counters(resume_meta_.counters);
    const auto& j = resume_meta_.summary;
    auto number = [&](const char* k) {
      return j.contains(k) && j[k].is_number() ? j[k].get<double>() : TrainSummary::kNone;
    };
    summary_.first_loss = number("first_loss");
    summary_.first_eval = number("first_eval");
    summary_.best_eval = number("best_eval");
    summary_.best_eval_step = j.value("best_eval_step", int64_t{-1});
    summary_.steps = start_step_;
  }
  // The ranks start from the same weights (each read the same files), or data parallelism's
  // sums mean nothing: checked, a pass over the parameters.
  if (world_->size() > 1) check_replicas(model_->params, *backend_, world_->host(), "at the start");
  if (shards_) {
    // Each rank keeps its shards and frees the whole tensors; the peaks restart, so that the
    // report shows training's (loading held the whole model).
    shards_->cut();
    net_->set_residency(shards_.get());
    tracker_.reset_peaks();
  }
  // Timed steps only: evaluation passes between them stay out of the profile.
  if (run_.profile) profile_ = std::make_unique<StepProfile>(backend_->make_phase_clock());
  stage_ = Stage::Loaded;
}

Batch TrainingRun::rank_batch(const std::vector<Sequence>& seqs) const {
  if (run_.parallel == ParallelMode::None) return make_batch(seqs);
  const Share share = batch_share(static_cast<int64_t>(seqs.size()), world_->rank(), world_->size());
  LOMO_ASSERT(share.count > 0, "a rank without a sequence (check_run_config refuses it)");
  const auto first = seqs.begin() + share.begin;
  Batch b = make_batch(std::vector<Sequence>(first, first + share.count));
  // Every rank divides by the global batch's loss tokens (the rule is make_batch's).
  b.loss_denominator = make_batch(seqs).loss_tokens;
  return b;
}

void TrainingRun::log_json(const std::string& line) {
  if (log_.is_open()) log_ << line << "\n" << std::flush;
}

// Higher accuracy or lower loss is better; the first, best and last are kept.
void TrainingRun::evaluate(int64_t step) {
  // Rank 0 evaluates and the others wait; with sharded parameters every rank runs the forward
  // passes (their gathers are collectives), and only rank 0's output goes anywhere.
  if (run_.eval_data_path.empty() || (!is_root() && !shards_)) return;
  nlohmann::ordered_json j;
  j["step"] = step;
  double v;
  bool better;
  TrainSummary& s = summary_;
  line_.end();
  Progress progress(line_, "eval", run_.task ? "examples" : "sequences");
  if (run_.task) {
    const ChoiceAccuracy a = evaluate_choices(*net_, *tok_, eval_choices_, run_.normalize,
                                              seq_len_, nullptr, progress.fn());
    progress.finish();
    v = a.accuracy();
    better = std::isnan(s.best_eval) || v > s.best_eval;
    std::fprintf(out_, "eval    step %lld: accuracy %.4f (%lld/%lld)\n",
                 static_cast<long long>(step), v, static_cast<long long>(a.correct),
                 static_cast<long long>(a.labelled));
    j["eval_accuracy"] = v;
  } else {
    v = mean_loss(*net_, eval_set_.examples, run_.batch_size, progress.fn());
    progress.finish();
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
  if (tensorboard_) tensorboard_->write(j);
}

const TrainSummary& TrainingRun::train() {
  expect(Stage::Loaded, "train");
  using clock = std::chrono::steady_clock;
  TrainSummary& s = summary_;
  if (start_step_ == 0) evaluate(0);  // a resumed run evaluated before its first step already
  const auto t_start = clock::now();
  auto last_save = t_start;
  for (int64_t step = start_step_; step < total_steps_; ++step) {
    std::vector<Sequence> seqs;
    for (int64_t i : order_->indices(step)) seqs.push_back(data_.examples[i]);
    const Batch batch = rank_batch(seqs);
    const double step_lr = schedule_.at(step);
    const double adapter_lr = lora_schedule_.at(step);
    const auto t0 = clock::now();
    net_->set_profile(profile_.get());
    const StepResult r = trainer_->step(batch, step_lr, step + 1, adapter_lr);
    net_->set_profile(nullptr);
    // A profiled step's phases end on the device; its wall time must include them (LOMO's step
    // ends with a read-back anyway; SGD's and AdamW's may not).
    if (profile_) backend_->synchronize();
    const double secs = std::chrono::duration<double>(clock::now() - t0).count();
    if (profile_) profile_->end_step(secs);
    int64_t tokens = 0;  // of the global batch
    for (const Sequence& q : seqs) tokens += static_cast<int64_t>(q.ids.size());
    s.tokens += tokens;
    s.comm_seconds += r.comm_seconds;
    s.steps = step + 1;
    if (step == 0) s.first_loss = r.loss;
    s.last_loss = r.loss;
    const double tps = tokens / std::max(secs, 1e-9);
    const double elapsed = std::chrono::duration<double>(clock::now() - t_start).count();
    line_.show(step_line({.step = step + 1,
                          .total = total_steps_,
                          .loss = r.loss,
                          .lr = run_.base_frozen() ? adapter_lr : step_lr,
                          .tokens_per_s = tps,
                          .elapsed_s = elapsed,
                          .eta_s = elapsed / static_cast<double>(step + 1 - start_step_) *
                                   static_cast<double>(total_steps_ - step - 1),
                          .rss_bytes = process_rss_bytes(),
                          .grad_norm = r.grad_norm,
                          .loss_scale = r.loss_scale,
                          .skipped = r.skipped}));
    nlohmann::ordered_json j;
    j["step"] = step + 1;
    j["loss"] = r.loss;
    j["lr"] = step_lr;
    if (lora_) j["lora_lr"] = adapter_lr;
    j["tokens_per_s"] = tps;
    j["tokens"] = tokens;
    if (r.grad_norm >= 0) j["grad_norm"] = r.grad_norm;
    if (r.loss_scale > 0) j["loss_scale"] = r.loss_scale;
    if (r.skipped) j["skipped"] = true;
    if (run_.parallel != ParallelMode::None) j["comm_s"] = r.comm_seconds;
    j["memory_peak_bytes"] = tracker_.peak_total();
    j["rss_bytes"] = process_rss_bytes();
    log_json(j.dump());
    if (tensorboard_) tensorboard_->write(j);
    if ((step + 1) % eval_every_ == 0 || step + 1 == total_steps_) evaluate(step + 1);
    // Checkpoints: every save_every steps, every save_every_minutes, and when asked to stop.
    const int64_t done = step + 1;
    bool stop = stop_ != nullptr && stop_->load() && done < total_steps_;
    // Every rank stops at the same step: each asks the others whether one of them was asked.
    if (world_->size() > 1) stop = world_->host().all_reduce_max(stop ? 1.0 : 0.0) > 0;
    const double minutes = std::chrono::duration<double>(clock::now() - last_save).count() / 60;
    if ((run_.save_every > 0 && done % run_.save_every == 0) ||
        (run_.save_every_minutes > 0 && minutes >= run_.save_every_minutes) ||
        (stop && run_.save)) {
      save_checkpoint(done);
      last_save = clock::now();
    }
    if (stop) {
      s.interrupted = true;
      line_.end();
      std::fprintf(out_, "stopped after step %lld of %lld on request; %s%s\n",
                   static_cast<long long>(done), static_cast<long long>(total_steps_),
                   run_.save ? "checkpoint " : "nothing written (--save off)",
                   run_.save ? s.last_checkpoint.c_str() : "");
      std::fflush(out_);
      stage_ = Stage::Trained;
      return s;
    }
  }
  s.seconds = std::chrono::duration<double>(clock::now() - t_start).count();
  line_.end();
  // memory.json reports training's peaks, before saving gathers or moves anything.
  trained_memory_ = memory_json(tracker_);
  // Sharded: every tensor gathered whole for save() (and for the check); kept until the end.
  if (shards_) shards_->gather_all();
  if (world_->size() > 1) {
    const uint64_t hash =
        check_replicas(model_->params, *backend_, world_->host(), "after training");
    std::fprintf(out_,
                 "ranks   %d %s identical after training (parameter hash %016llx); rank 0 "
                 "spent %.1f s of %.1f s %s gradients\n",
                 world_->size(), shards_ ? "gathered models" : "replicas",
                 static_cast<unsigned long long>(hash), s.comm_seconds, s.seconds,
                 shards_ ? "reducing" : "summing");
  }
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
  LOMO_ASSERT(!summary_.interrupted, "an interrupted run has nothing final to save");
  if (!run_.save) {  // --save off: a measurement, nothing written
    stage_ = Stage::Saved;
    return;
  }
  if (shards_) shards_->gather_all();  // (train() has, on every rank; a no-op then)
  if (!is_root()) {  // rank 0 saves the model every rank holds
    stage_ = Stage::Saved;
    return;
  }
  out_dir_->create();
  line_.end();
  Progress progress(line_, "save", "parameters");
  // With LoRA: the adapters in PEFT's layout, in OUT itself for a frozen base; when the base was
  // trained too, OUT is the trained model and the adapters go to OUT/adapter, naming OUT as
  // their base (transformers' from_pretrained would otherwise see OUT's adapter_config.json and
  // load the adapters onto the ORIGINAL base). --merge: one model, base + adapters.
  if (lora_ && !run_.merge) {
    if (run_.base_frozen()) {
      write_peft_adapter(out_dir_->staging(), *lora_, run_.model_path);
    } else {
      const std::string dir = out_dir_->staging() + "/adapter";
      std::filesystem::create_directory(dir);
      write_peft_adapter(dir, *lora_, run_.out_path);
    }
  }
  if (lora_ && run_.merge) lora_->merge_into(model_->params);
  // Export reads host memory: a GPU run's parameters come back (training is over).
  model_->params.move_to(host_allocator(), *backend_, tracker_);
  const bool base = !lora_ || run_.merge || !run_.base_frozen();
  if (base && run_.out_format == OutFormat::Gguf) {
    export_gguf(out_dir_->staging() + "/model.gguf", *model_, tok_.get(), run_.model_path,
                run_.export_type(), progress.fn());
  } else if (base) {
    export_hf(out_dir_->staging(), *model_, tok_.get(), run_.model_path, progress.fn());
  }
  progress.finish();
  write_file_atomic(out_dir_->staging() + "/memory.json", trained_memory_.dump(2) + "\n");
  out_dir_->commit();
  std::fprintf(out_, "saved   %s\n", run_.out_path.c_str());
  std::fflush(out_);
  stage_ = Stage::Saved;
}

}  // namespace lomo
