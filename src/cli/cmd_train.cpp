#include <csignal>
#include <cstdio>
#include <memory>
#include <new>
#include <string>

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/preamble.h"
#include "cli/run_flags.h"
#include "core/error.h"
#include "dist/world.h"
#include "train/training_run.h"

namespace lomo::cli {

namespace {

// SIGINT/SIGTERM ask the run to stop after the current step with a checkpoint; a second one
// stops at once (the default action). The signals are blocked in every computing thread and
// taken by one watcher thread with sigwait, so no handler ever interrupts a kernel: an
// asynchronous handler on the training thread corrupted the heap about one run in four on the
// development VM (inside oneDNN's GEMM, never under ASan), which a blocked mask avoids by
// construction.
std::atomic<bool> g_stop{false};

void watch_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // inherited by every thread started later
  std::thread([set] {
    int sig = 0;
    sigwait(&set, &sig);
    g_stop.store(true);
    static const char msg[] =
        "\nlomo train: stopping after this step to write a checkpoint (again to stop at once)\n";
    [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    sigwait(&set, &sig);
    std::signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
    ::raise(sig);
  }).detach();
}

// The command that continues the run: this one, resuming from `checkpoint`.
std::string resume_command(int argc, char** argv, const std::string& checkpoint) {
  std::string s = "lomo";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--resume") {
      ++i;  // and its value
      continue;
    }
    if (a.rfind("--resume=", 0) == 0) continue;
    s += " " + (a.find_first_of(" \t'\"$") == std::string::npos ? a : "'" + a + "'");
  }
  return s + " --resume " + checkpoint;
}

}  // namespace

int cmd_train(int argc, char** argv) {
  Args args("train", "lomo train --model DIR --data FILE.jsonl --out DIR [flags]",
            "Fine-tunes all parameters of a model. With --optimizer lomo each parameter's\n"
            "gradient is applied inside backward and discarded, so training needs about the\n"
            "memory of inference. Prints one line per step and the memory table at the end;\n"
            "writes the model (a Hugging Face folder, or model.gguf) and memory.json to --out.\n"
            "With --lora-rank R it trains LoRA adapters instead (PEFT's layout in --out), or,\n"
            "with --base-lr F as well, adapters and every base weight (LoRA + LOMO).\n"
            "Ctrl-C (SIGINT) or SIGTERM: the current step finishes, a checkpoint is written and\n"
            "the run exits with status 130, saying how to resume.",
            run_flags(RunCommand::Train));
  args.parse(argc, argv, 2);
  if (args.help_requested()) {
    std::fputs(args.help().c_str(), stdout);
    return 0;
  }
  RunConfig config = run_config_from_args(args);
  // --random-init replaces --model (and the default model).
  if (config.random_config_path.empty()) config.model_path = model_preamble(args);
  // Before MPI starts its threads, so that they inherit the blocked signals too.
  watch_stop_signals();
  const std::unique_ptr<World> world = World::start();
  // Rank 0 prints; the others' progress goes nowhere (their errors still reach stderr).
  std::FILE* progress = stdout;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> devnull(nullptr, &std::fclose);
  if (world->rank() != 0) {
    devnull.reset(std::fopen("/dev/null", "w"));
    if (devnull == nullptr) throw Error("cannot open /dev/null for rank " +
                                        std::to_string(world->rank()) + "'s progress");
    progress = devnull.get();
  }
  const bool save = config.save;
  try {
    TrainingRun run(std::move(config), progress);
    run.set_world(*world);
    run.set_stop_flag(&g_stop);
    run.prepare();
    run.load();
    const TrainSummary& s = run.train();
    if (s.interrupted) {
      if (world->rank() == 0 && !save) {
        std::fprintf(stderr, "lomo train: interrupted; --save off: no model or checkpoint "
                             "written\n");
      } else if (world->rank() == 0) {
        const std::string again = resume_command(argc, argv, s.last_checkpoint);
        std::fprintf(stderr,
                     "lomo train: interrupted; nothing saved to --out. To continue where it "
                     "stopped:\n  %s\n",
                     again.c_str());
      }
      return 130;
    }
    run.save();
    return 0;
  } catch (const std::exception& e) {
    if (world->size() == 1) throw;  // main() prints it
    // One rank failing ends them all: the others may be waiting for it in a collective.
    const bool oom = dynamic_cast<const std::bad_alloc*>(&e) != nullptr;
    std::fprintf(stderr, "lomo train: rank %d of %d: error: %s\n", world->rank(), world->size(),
                 oom ? "out of memory" : e.what());
    std::fflush(stderr);
    world->abort(1);
    throw;
  }
}

}  // namespace lomo::cli
