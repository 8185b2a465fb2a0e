// --profile's accounting (core/profile.h): phases are timed by a clock's marks and resolved when
// the step ends, the first step kept apart. A hand-driven clock gives exact intervals, so every
// figure of the table is known in advance; a real training run shows the phases inside the step.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/profile.h"

namespace lomo {
namespace {

// Time advances only when the test says so; elapsed() counts its calls (the resolution must wait
// for end_step: a device clock resolves by waiting for the device).
class HandClock final : public PhaseClock {
 public:
  explicit HandClock(double* now, int* resolved) : now_(now), resolved_(resolved) {}
  int mark() override {
    marks_.push_back(*now_);
    return static_cast<int>(marks_.size()) - 1;
  }
  double elapsed(int a, int b) override {
    ++*resolved_;
    return marks_.at(static_cast<size_t>(b)) - marks_.at(static_cast<size_t>(a));
  }
  void reset() override { marks_.clear(); }

 private:
  double* now_;
  int* resolved_;
  std::vector<double> marks_;
};

TEST(StepProfile, PhasesAreResolvedAtTheStepsEndAndTheFirstStepIsKeptApart) {
  double now = 0;
  int resolved = 0;
  StepProfile profile(std::make_unique<HandClock>(&now, &resolved));
  // Step k (1-based): linear 1·k s, attention 0.5 s twice, the step's wall time 3·k s.
  for (int k = 1; k <= 3; ++k) {
    {
      PhaseTimer t(&profile, Phase::Linear);
      now += 1.0 * k;
    }
    for (int i = 0; i < 2; ++i) {
      PhaseTimer t(&profile, Phase::Attention);
      now += 0.5;
    }
    now += 7;  // outside every phase
    EXPECT_EQ(resolved, k == 1 ? 0 : 3 * (k - 2)) << "an interval was resolved before end_step";
    profile.end_step(3.0 * k);
  }
  EXPECT_EQ(resolved, 6) << "the first step's 3 intervals need no resolving; steps 2 and 3 have 3";
  EXPECT_DOUBLE_EQ(profile.mean(Phase::Linear), (2.0 + 3.0) / 2);
  EXPECT_DOUBLE_EQ(profile.mean(Phase::Attention), 1.0);
  EXPECT_DOUBLE_EQ(profile.mean(Phase::LmHead), 0.0);
  const std::string table = profile.table();
  // Mean step 7.5 s: linear 2.5 (33.3 %), attention 1.0 (13.3 %), other 4.0 (53.3 %).
  for (const char* line : {"mean of steps 2..3",
                           "linear (GEMMs + fused updates)     2.500   33.3 %",
                           "attention                          1.000   13.3 %",
                           "other                              4.000   53.3 %",
                           "step                               7.500"}) {
    EXPECT_NE(table.find(line), std::string::npos) << "no \"" << line << "\" in\n" << table;
  }
}

TEST(StepProfile, NoTableBeforeASecondStep) {
  StepProfile profile;  // the host clock
  {
    PhaseTimer t(&profile, Phase::Elementwise);
  }
  profile.end_step(0.1);
  EXPECT_EQ(profile.table(), "");
  EXPECT_EQ(profile.mean(Phase::Elementwise), 0.0);
}

TEST(StepProfile, TheHostClockTimesItsScope) {
  HostClock clock;
  const int a = clock.mark();
  volatile double x = 0;
  for (int i = 0; i < 200000; ++i) x = x + 1e-3 * i;
  const int b = clock.mark();
  EXPECT_EQ(b, a + 1);
  EXPECT_GT(clock.elapsed(a, b), 0.0);
  EXPECT_EQ(clock.elapsed(a, a), 0.0);
  clock.reset();
  EXPECT_EQ(clock.mark(), 0);
}

}  // namespace
}  // namespace lomo
