#include "core/profile.h"

#include <cstdio>

namespace lomo {

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::Linear:
      return "linear (GEMMs + fused updates)";
    case Phase::Attention:
      return "attention";
    case Phase::LmHead:
      return "LM head + loss";
    case Phase::Elementwise:
      return "elementwise";
    case Phase::Update:
      return "other updates";
    case Phase::kCount:
      break;
  }
  return "?";
}

int HostClock::mark() {
  marks_.push_back(std::chrono::steady_clock::now());
  return static_cast<int>(marks_.size()) - 1;
}

double HostClock::elapsed(int a, int b) {
  return std::chrono::duration<double>(marks_.at(static_cast<size_t>(b)) -
                                       marks_.at(static_cast<size_t>(a)))
      .count();
}

StepProfile::StepProfile(std::unique_ptr<PhaseClock> clock)
    : clock_(clock ? std::move(clock) : std::make_unique<HostClock>()) {}

void StepProfile::end_step(double seconds) {
  if (steps_ > 0) {  // the first step pays one-off costs: not averaged in
    for (const Interval& i : open_) sum_[static_cast<int>(i.phase)] += clock_->elapsed(i.start, i.end);
    step_sum_ += seconds;
  }
  open_.clear();
  clock_->reset();
  ++steps_;
}

double StepProfile::mean(Phase p) const {
  return steps_ < 2 ? 0.0 : sum_[static_cast<int>(p)] / static_cast<double>(steps_ - 1);
}

std::string StepProfile::table() const {
  if (steps_ < 2) return "";
  const double n = static_cast<double>(steps_ - 1), step = step_sum_ / n;
  std::string out;
  char line[160];
  std::snprintf(line, sizeof line, "  profile (mean of steps 2..%lld)   s/step   share\n",
                static_cast<long long>(steps_));
  out += line;
  double covered = 0;
  for (int i = 0; i < kPhases; ++i) {
    const double s = sum_[i] / n;
    covered += s;
    std::snprintf(line, sizeof line, "  %-32s %7.3f  %5.1f %%\n", phase_name(static_cast<Phase>(i)),
                  s, 100 * s / step);
    out += line;
  }
  std::snprintf(line, sizeof line, "  %-32s %7.3f  %5.1f %%\n", "other", step - covered,
                100 * (step - covered) / step);
  out += line;
  std::snprintf(line, sizeof line, "  %-32s %7.3f\n", "step", step);
  out += line;
  return out;
}

}  // namespace lomo
