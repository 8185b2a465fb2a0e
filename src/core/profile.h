// Where a training step's time goes (`lomo train --profile`): time by phase — the host's clock
// on the CPU, the device's own (CUDA events) on a GPU, PhaseClock below — summed over the calls
// of a step, averaged over the steps after the first (which pays the one-off costs: JIT
// kernels, first touch of the planned buffers). A null profile costs one branch per call.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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

// What phases are timed by. mark() notes "now" in the clock's timeline and returns a handle;
// elapsed() gives the seconds between two marks. The host clock reads std::chrono at once; a
// device's clock (a GPU's events, ops/cuda/event_clock.h) marks a point in its queue of work and
// resolves the intervals when the step ends, so a profiled step never waits for the device at a
// phase boundary and each phase times its own work, not its launches.
class PhaseClock {
 public:
  virtual ~PhaseClock() = default;
  virtual int mark() = 0;
  // Seconds from mark a to mark b, b after a; may wait for the device to pass b.
  virtual double elapsed(int a, int b) = 0;
  // Forgets every mark (the next mark() returns handle 0); keeps what it allocated.
  virtual void reset() = 0;
};

// std::chrono::steady_clock: the CPU backend's clock, whose ops have run when they return.
class HostClock final : public PhaseClock {
 public:
  int mark() override;
  double elapsed(int a, int b) override;
  void reset() override { marks_.clear(); }

 private:
  std::vector<std::chrono::steady_clock::time_point> marks_;
};

class StepProfile {
 public:
  // Times phases by `clock` (null: the host clock).
  explicit StepProfile(std::unique_ptr<PhaseClock> clock = nullptr);
  // A phase from mark `start` to now: recorded, resolved to seconds at end_step.
  int start() { return clock_->mark(); }
  void finish(Phase p, int start_mark) { open_.push_back({p, start_mark, clock_->mark()}); }
  // Closes a step of `seconds` wall time; the first closed step is kept apart.
  void end_step(double seconds);
  // Per-step mean seconds by phase and "other" (the rest of the step), with shares; empty before
  // a step has been closed.
  std::string table() const;
  // Mean seconds per step of phase p over the closed steps after the first (0 before two).
  double mean(Phase p) const;

 private:
  static constexpr int kPhases = static_cast<int>(Phase::kCount);
  struct Interval {
    Phase phase;
    int start, end;  // marks of clock_
  };
  std::unique_ptr<PhaseClock> clock_;
  std::vector<Interval> open_;  // this step's phases, not yet resolved
  std::array<double, kPhases> sum_{};
  double step_sum_ = 0;
  int64_t steps_ = 0;  // closed steps, the first included
};

// Times its scope under `phase` in `profile` (when not null).
class PhaseTimer {
 public:
  PhaseTimer(StepProfile* profile, Phase phase) : profile_(profile), phase_(phase) {
    if (profile_) start_ = profile_->start();
  }
  // A device clock's failure here (a CUDA error) is not thrown from a destructor: the phase goes
  // untimed, and the error surfaces at the backend's next call.
  ~PhaseTimer() {
    if (!profile_) return;
    try {
      profile_->finish(phase_, start_);
    } catch (...) {
    }
  }
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

 private:
  StepProfile* profile_;
  Phase phase_;
  int start_ = 0;
};

}  // namespace lomo
