// The memory planner: the paper's Table 1 for LLaMA-7B, and predicted against tracked
// measurement for every optimizer and checkpointing setting on SmolLM2-135M's shape.
#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.h"
#include "ops/backend.h"
#include "test_run.h"
#include "train/memory_plan.h"

namespace lomo {
namespace {

double gib(size_t b) {
  return static_cast<double>(b) / (1024.0 * 1024 * 1024);
}

TEST(MemoryPlan, ReproducesThePapersTable1ForLlama7B) {
  // Lv et al. 2023, Table 1: LLaMA-7B, fp16, batch 8, seq 512, GB = 2^30 bytes.
  const auto backend = make_backend();
  MemoryPlanInput in;
  in.backend = backend.get();
  in.config = load_config(std::string(LOMO_SOURCE_DIR) + "/configs/llama-7b.json");
  in.dtype = StorageDtype::F16;
  in.batch = 8;
  in.seq = 512;
  auto round2 = [](size_t b) { return std::round(gib(b) * 100) / 100; };
  in.optimizer = OptimizerKind::AdamW;
  MemoryPlan m = plan_memory(in);
  EXPECT_EQ(round2(m.parameters), 12.55);
  EXPECT_EQ(round2(m.gradients), 12.55);
  EXPECT_EQ(round2(m.optimizer_states), 75.31);
  in.optimizer = OptimizerKind::Sgd;
  m = plan_memory(in);
  EXPECT_EQ(round2(m.gradients), 12.55);
  EXPECT_EQ(round2(m.optimizer_states), 25.10);
  in.optimizer = OptimizerKind::Lomo;
  m = plan_memory(in);
  EXPECT_EQ(round2(m.parameters), 12.55);
  EXPECT_EQ(round2(m.gradients), 0.24);  // the 32000 x 4096 embedding in fp16
  EXPECT_EQ(m.optimizer_states, 0u);
  std::printf("  LLaMA-7B fp16 lomo: activations %.2f GiB with checkpointing (paper 1.79)\n",
              gib(m.activations));
}

TEST(MemoryPlan, PredictionEqualsTrackedMeasurement) {
  ModelConfig c = load_config(std::string(LOMO_SOURCE_DIR) + "/configs/smollm2-135m-shape.json");
  const int64_t B = 4, T = 256;
  std::vector<Sequence> seqs(B);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t)
      seqs[b].ids.push_back(static_cast<int32_t>(counter_random(1, b, t) % c.vocab));
  }
  const Batch batch = make_batch(seqs);
  test::TestRun init(c, 0);
  const ModelParams& weights = init.params();
  struct Case {
    OptimizerKind opt;
    StorageDtype dtype;
    bool bf16_gemm = false;
  };
  // SGD and AdamW need fp32 master weights in bf16, which the engine refuses for now.
  const Case cases[] = {
      {OptimizerKind::Lomo, StorageDtype::F32},  {OptimizerKind::AdaLomo, StorageDtype::F32},
      {OptimizerKind::Sgd, StorageDtype::F32},   {OptimizerKind::AdamW, StorageDtype::F32},
      {OptimizerKind::Lomo, StorageDtype::BF16}, {OptimizerKind::AdaLomo, StorageDtype::BF16},
      {OptimizerKind::Lomo, StorageDtype::BF16, true}};
  for (const Case& cs : cases) {
    const OptimizerKind opt = cs.opt;
    std::vector<Checkpointing> modes = {Checkpointing::On, Checkpointing::Off};
    // Blocks that keep activations and blocks recomputed in one step (--checkpointing auto's
    // layouts): once, the rule is the same for every optimizer.
    if (&cs == &cases[0]) modes.push_back(Checkpointing{7});
    // Blocks recomputed, the LM head in one pass (its larger tiles; bf16 copies with bf16 products).
    if (&cs == &cases[0] || cs.bf16_gemm) modes.push_back(Checkpointing{0, false});
    for (Checkpointing ck : modes) {
      test::TestRun run(c, weights, cs.dtype);
      const MemoryTracker& tracker = run.tracker;
      TrainOptions o;
      o.optimizer = opt;
      o.checkpointing = ck;
      o.fused_gemm_update = true;
      o.bf16_gemm = cs.bf16_gemm;
      Trainer trainer = run.trainer(o);
      trainer.step(batch, 0.0, 1);
      MemoryPlanInput in;
      in.config = c;
      in.backend = run.backend.get();
      in.optimizer = opt;
      in.dtype = cs.dtype;
      in.batch = B;
      in.seq = T;
      in.checkpointing = ck;
      in.fused_gemm_update = true;
      in.bf16_gemm = cs.bf16_gemm;
      const MemoryPlan p = plan_memory(in);
      const std::string what = std::string(optimizer_name(opt)) + ", " +
                               storage_dtype_name(cs.dtype) +
                               (cs.bf16_gemm ? ", bf16 products" : "") + ", ckpt " +
                               describe_checkpointing(ck, c.n_layer);
      auto near = [&](size_t predicted, MemCategory cat) {
        const double m = static_cast<double>(tracker.peak(cat));
        EXPECT_LE(std::abs(static_cast<double>(predicted) - m), 0.05 * m + 1)
            << what << " " << category_name(cat);
      };
      near(p.parameters, MemCategory::Parameters);
      near(p.gradients, MemCategory::Gradients);
      near(p.optimizer_states, MemCategory::OptimizerStates);
      near(p.activations, MemCategory::Activations);
      near(p.workspace, MemCategory::Workspace);
      std::printf("  %-26s predicted %.3f GiB, tracked peak %.3f GiB\n", what.c_str(),
                  gib(p.total()), gib(tracker.peak_total()));
    }
  }
}

// --checkpointing auto runs the LM head in one pass when that fits, then keeps as many blocks as
// the limit allows: exactly k when the limit is k blocks' prediction, one fewer a byte below it,
// all with no limit, none when nothing fits; on/off blocks get the one-pass head when it fits.
TEST(MemoryPlan, AutoCheckpointingKeepsAsManyBlocksAsFit) {
  const auto backend = make_backend();
  MemoryPlanInput in;
  in.backend = backend.get();
  in.config = load_config(std::string(LOMO_SOURCE_DIR) + "/configs/smollm2-135m-shape.json");
  in.dtype = StorageDtype::BF16;
  in.batch = 4;
  in.seq = 512;
  auto total = [&](int64_t kept, bool recompute_head) {
    MemoryPlanInput x = in;
    x.checkpointing = Checkpointing{kept, recompute_head};
    return plan_memory(x).total();
  };
  EXPECT_LT(total(0, true), total(1, true));
  EXPECT_LT(total(28, true), total(29, true));
  // The one-pass head's tile costs memory.
  EXPECT_LT(total(0, true), total(0, false));
  // n − 1 kept blocks need the shared set of the one recomputed: as much as keeping all n.
  EXPECT_EQ(total(29, false), total(30, false));
  EXPECT_EQ(choose_checkpointing(in, total(5, false)), (Checkpointing{5, false}));
  EXPECT_EQ(choose_checkpointing(in, total(5, false) - 1), (Checkpointing{4, false}));
  EXPECT_EQ(choose_checkpointing(in, total(30, false)).kept_of(30), 30);
  EXPECT_EQ(choose_checkpointing(in, 0).kept_of(30), 30);
  EXPECT_FALSE(choose_checkpointing(in, 0).recompute_head);
  // A byte short of the one-pass head with every block recomputed: the head is recomputed too,
  // and the blocks that fit then keep their activations.
  const Checkpointing tight = choose_checkpointing(in, total(0, false) - 1);
  EXPECT_TRUE(tight.recompute_head);
  EXPECT_LE(total(tight.kept, true), total(0, false) - 1);
  EXPECT_GT(total(tight.kept + 1, true), total(0, false) - 1);
  EXPECT_EQ(choose_checkpointing(in, total(0, true) / 2), Checkpointing::On);
  // --checkpointing on / off: their blocks, the head in one pass if it fits.
  EXPECT_EQ(fit_head(in, Checkpointing::On, 0), (Checkpointing{0, false}));
  EXPECT_EQ(fit_head(in, Checkpointing::On, total(0, false)), (Checkpointing{0, false}));
  EXPECT_EQ(fit_head(in, Checkpointing::On, total(0, false) - 1), Checkpointing::On);
  EXPECT_EQ(fit_head(in, Checkpointing::Off, total(30, false)), Checkpointing::Off);
}

}  // namespace
}  // namespace lomo
