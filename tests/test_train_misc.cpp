// Learning-rate schedules and the order in which steps read the data.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "optim/schedule.h"
#include "train/batch_order.h"

namespace lomo {
namespace {

TEST(Schedule, LinearWarmupThenDecayAsTransformers) {
  // transformers.get_linear_schedule_with_warmup(total=20, warmup=ceil(0.1·20)=2):
  // lr·s/2 for s < 2, then lr·(20 − s)/18.
  Schedule s{LrSchedule::Linear, 0.5, 0.1, 20};
  EXPECT_EQ(s.warmup_steps(), 2);
  EXPECT_DOUBLE_EQ(s.at(0), 0.0);
  EXPECT_DOUBLE_EQ(s.at(1), 0.25);
  EXPECT_DOUBLE_EQ(s.at(2), 0.5);
  EXPECT_DOUBLE_EQ(s.at(11), 0.5 * 9.0 / 18.0);
  EXPECT_DOUBLE_EQ(s.at(19), 0.5 / 18.0);
}

TEST(Schedule, CosineAndConstant) {
  Schedule c{LrSchedule::Cosine, 1.0, 0.0, 10};
  EXPECT_DOUBLE_EQ(c.at(0), 1.0);
  EXPECT_NEAR(c.at(5), 0.5, 1e-12);
  Schedule k{LrSchedule::Constant, 0.3, 0.5, 10};
  EXPECT_DOUBLE_EQ(k.at(2), 0.3 * 2 / 5);
  EXPECT_DOUBLE_EQ(k.at(7), 0.3);
  EXPECT_THROW(parse_lr_schedule("step"), Error);
}

// Where transformers' warm-up would cover every step (a one-step run, or a ratio of 1), the last
// step still trains at the peak lr: a one-step run must change the weights.
TEST(Schedule, WarmupNeverCoversEveryStep) {
  Schedule one{LrSchedule::Constant, 0.3, 0.1, 1};
  EXPECT_EQ(one.warmup_steps(), 0);
  EXPECT_DOUBLE_EQ(one.at(0), 0.3);
  Schedule two{LrSchedule::Linear, 0.3, 0.1, 2};  // transformers: W = 1, as here
  EXPECT_EQ(two.warmup_steps(), 1);
  EXPECT_DOUBLE_EQ(two.at(0), 0.0);
  EXPECT_DOUBLE_EQ(two.at(1), 0.3);
  Schedule all{LrSchedule::Constant, 1.0, 1.0, 4};  // transformers: W = 4, peak never reached
  EXPECT_EQ(all.warmup_steps(), 3);
  EXPECT_DOUBLE_EQ(all.at(3), 1.0);
}

TEST(BatchOrder, ShuffleOffReadsLinesInFileOrder) {
  // Step k of batch size b reads lines k·b … k·b+b−1, wrapping at the end of the file.
  BatchOrder o(10, 4, Shuffle::Off, 0);
  EXPECT_EQ(o.indices(0), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(o.indices(1), (std::vector<int64_t>{4, 5, 6, 7}));
  EXPECT_EQ(o.indices(2), (std::vector<int64_t>{8, 9, 0, 1}));
}

TEST(BatchOrder, ShuffleVisitsEveryLineOncePerEpochAndIsSeeded) {
  BatchOrder a(12, 4, Shuffle::On, 3), b(12, 4, Shuffle::On, 3), c(12, 4, Shuffle::On, 4);
  std::set<int64_t> seen;
  for (int k = 0; k < 3; ++k) {
    for (int64_t i : a.indices(k)) seen.insert(i);
    EXPECT_EQ(a.indices(k), b.indices(k));
  }
  EXPECT_EQ(seen.size(), 12u);
  bool differs = false;
  for (int k = 0; k < 3; ++k) differs |= a.indices(k) != c.indices(k);
  EXPECT_TRUE(differs) << "another seed should give another order";
}

}  // namespace
}  // namespace lomo
