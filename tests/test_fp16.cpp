// fp16 storage with dynamic loss scaling (design §2 rule 7): an overflow in the first (norm)
// pass skips the step with no parameter touched and halves the scale; clean steps double it
// after the window; training goes on.
#include <gtest/gtest.h>

#include <cstring>

#include "test_run.h"
#include "test_util.h"

namespace lomo {
namespace {

std::vector<std::vector<uint8_t>> snapshot(const ModelParams& params) {
  std::vector<std::vector<uint8_t>> s;
  for (const auto& p : params.all()) {
    const auto* b = p.data.as<uint8_t>();
    s.emplace_back(b, b + p.data.bytes());
  }
  return s;
}

TEST(Fp16, OverflowSkipsTheStepAndHalvesTheScale) {
  test::TestRun run("llama_gqa", StorageDtype::F16);
  SafetensorsFile ref(test::fixture_dir("llama_gqa") + "/reference.safetensors");
  const Batch batch = test::fixture_batch(ref);
  TrainOptions o;
  o.loss_scale_init = 1 << 30;  // gradients of order 1 become ~1e9 > 65504: an overflow
  o.loss_scale_window = 1000;
  Trainer trainer = run.trainer(o);
  const auto before = snapshot(run.params());
  const StepResult r = trainer.step(batch, 0.1, 1);
  EXPECT_TRUE(r.skipped);
  EXPECT_EQ(r.loss_scale, static_cast<double>(1 << 29));
  EXPECT_EQ(snapshot(run.params()), before) << "a skipped step must not touch any parameter";
  // Training continues: the scale keeps halving until a step fits, which then updates.
  int skipped = 1;
  StepResult s;
  for (int step = 2; step < 60; ++step) {
    s = trainer.step(batch, 0.1, step);
    if (!s.skipped) break;
    ++skipped;
  }
  ASSERT_FALSE(s.skipped) << "the scale never came down";
  EXPECT_NE(snapshot(run.params()), before);
  EXPECT_LE(s.loss_scale * s.grad_norm, 65504.0 * 100);  // sanity: a representable scale
  std::printf("  fp16: %d skipped steps from scale 2^30, first clean step at scale %g\n", skipped,
              s.loss_scale);
}

TEST(Fp16, CleanStepsGrowTheScaleAfterTheWindow) {
  test::TestRun run("qwen2_bias", StorageDtype::F16);
  SafetensorsFile ref(test::fixture_dir("qwen2_bias") + "/reference.safetensors");
  const Batch batch = test::fixture_batch(ref);
  TrainOptions o;
  o.loss_scale_init = 1;
  o.loss_scale_window = 2;
  Trainer trainer = run.trainer(o);
  const double want[] = {1, 2, 2, 4, 4, 8};
  for (int k = 0; k < 6; ++k) {
    const StepResult r = trainer.step(batch, 0.01, k + 1);
    ASSERT_FALSE(r.skipped);
    EXPECT_EQ(r.loss_scale, want[k]) << "after step " << k + 1;
  }
}

TEST(Fp16, ScaledStepEqualsUnscaledUpToFp16Rounding) {
  // Loss scaling must not change the update: scale 1 and scale 1024 give the same parameters
  // (the gradient is divided by S in fp32 before use).
  std::vector<std::vector<uint8_t>> result[2];
  for (int k = 0; k < 2; ++k) {
    test::TestRun run("smollm_tied", StorageDtype::F16);
    SafetensorsFile ref(test::fixture_dir("smollm_tied") + "/reference.safetensors");
      TrainOptions o;
    o.loss_scale_init = k == 0 ? 1 : 1024;
    Trainer trainer = run.trainer(o);
    const StepResult r = trainer.step(test::fixture_batch(ref), 0.1, 1);
    ASSERT_FALSE(r.skipped);
    result[k] = snapshot(run.params());
  }
  size_t differing = 0, total = 0;
  for (size_t i = 0; i < result[0].size(); ++i) {
    for (size_t j = 0; j < result[0][i].size(); j += 2) {
      ++total;
      differing += std::memcmp(&result[0][i][j], &result[1][i][j], 2) != 0;
    }
  }
  // Powers of two scale exactly in fp32, so the two runs compute the same fp32 values.
  EXPECT_EQ(differing, 0u) << "of " << total;
}

}  // namespace
}  // namespace lomo
