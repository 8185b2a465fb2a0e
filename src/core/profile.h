// Where a training step's time goes (`lomo train --profile`): wall time by phase, summed over the
// calls of a step, averaged over the steps after the first (which pays the one-off costs: JIT
// kernels, first touch of the planned buffers). A null profile costs one branch per call.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace lomo {

enum class Phase {
  Linear,       // the linear layers' GEMMs (forward, dX, dW), with their fused LOMO updates and
                // the fp32 views of 16-bit weights
  Attention,    // q·kᵀ, softmax, P·v and their backward
  LmHead,       // the tiled LM head + cross-entropy, both passes
  Elementwise,  // RMSNorm, RoPE, SwiGLU, residual adds, embedding
  Update,       // updates outside the linear layers' GEMMs (norms, embedding, head; SGD, AdamW)
  kCount
};
const char* phase_name(Phase p);

class StepProfile {
 public:
  void add(Phase p, double seconds) { current_[static_cast<int>(p)] += seconds; }
  // Waits until the device has run everything queued (set for an asynchronous backend, a GPU):
  // each phase then times its own work rather than its launches. Costs a synchronisation per
  // phase, so a profiled GPU step runs somewhat slower than an unprofiled one.
  void set_sync(std::function<void()> sync) { sync_ = std::move(sync); }
  void sync() const {
    if (sync_) sync_();
  }
  // Closes a step of `seconds` wall time; the first closed step is kept apart.
  void end_step(double seconds);
  // Per-step mean seconds by phase and "other" (the rest of the step), with shares; empty before
  // a step has been closed.
  std::string table() const;

 private:
  static constexpr int kPhases = static_cast<int>(Phase::kCount);
  std::array<double, kPhases> current_{};
  std::array<double, kPhases> sum_{};
  double step_sum_ = 0;
  int64_t steps_ = 0;  // closed steps, the first included
  std::function<void()> sync_;
};

// Adds the wall time of its scope to `profile` (when not null) under `phase`.
class PhaseTimer {
 public:
  PhaseTimer(StepProfile* profile, Phase phase) : profile_(profile), phase_(phase) {
    if (profile_) {
      profile_->sync();
      t0_ = std::chrono::steady_clock::now();
    }
  }
  ~PhaseTimer() {
    if (profile_) {
      profile_->sync();
      profile_->add(phase_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_)
                                .count());
    }
  }
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

 private:
  StepProfile* profile_;
  Phase phase_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace lomo
