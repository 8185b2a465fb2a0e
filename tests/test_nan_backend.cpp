// The NaN-filling backend (tests/nan_backend.h) against the CPU backend it wraps: poisoning an
// output before an op that writes all of it cannot change a single bit, so every configuration
// the engine trains in — fp32, bf16 with fp32 or bf16 products, fp16 with loss scaling; LOMO
// with and without the zero-buffer update, AdaLomo, SGD, AdamW; blocks recomputed or kept, the
// LM head in one pass or two — must give bit-identical losses and parameters on both. A
// difference names the configuration and the first tensor that differs. (The reference tests run
// on it too, against PyTorch: test_reference.cpp.)
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "core/error.h"
#include "nan_backend.h"
#include "test_run.h"
#include "test_util.h"
#include "train/memory_plan.h"

namespace lomo {
namespace {

using test::TestBackend;
using test::TestRun;

struct Config {
  const char* fixture;
  StorageDtype dtype;
  OptimizerKind optimizer;
  bool bf16_gemm = false;
  bool fused = true;
  Checkpointing ckpt = Checkpointing::On;
  float clip_norm = 0;
};

std::string describe(const Config& c) {
  const char* dt = c.dtype == StorageDtype::F32 ? "fp32" : c.dtype == StorageDtype::BF16 ? "bf16" : "fp16";
  return std::string(c.fixture) + " " + dt + " " + optimizer_name(c.optimizer) +
         (c.bf16_gemm ? " bf16-products" : "") + (c.fused ? " fused" : "") + " ckpt " +
         describe_checkpointing(c.ckpt, 2) + (c.clip_norm > 0 ? " clip-norm" : "");
}

TEST(NanFill, EveryConfigurationEqualsTheCpuBitForBit) {
  const Config configs[] = {
      {"llama_gqa", StorageDtype::F32, OptimizerKind::Lomo},
      {"smollm_tied", StorageDtype::F32, OptimizerKind::Lomo, false, true, Checkpointing::Off},
      {"qwen2_bias", StorageDtype::F32, OptimizerKind::AdamW, false, false, Checkpointing{1, false}},
      {"smollm_tied", StorageDtype::F32, OptimizerKind::Sgd, false, false, Checkpointing::On, 1.0f},
      {"llama_gqa", StorageDtype::BF16, OptimizerKind::Lomo},
      {"smollm_tied", StorageDtype::BF16, OptimizerKind::Lomo, true},
      {"qwen2_bias", StorageDtype::BF16, OptimizerKind::Lomo, true, true, Checkpointing::Off},
      {"qwen2_bias", StorageDtype::BF16, OptimizerKind::AdaLomo, true, false, Checkpointing::On,
       1.0f},
      {"smollm_tied", StorageDtype::BF16, OptimizerKind::AdaLomo, false, false,
       Checkpointing{0, false}},
      {"llama_gqa", StorageDtype::F16, OptimizerKind::Lomo},
      {"smollm_tied", StorageDtype::F16, OptimizerKind::AdaLomo, false, false, Checkpointing::Off},
  };
  for (const Config& c : configs) {
    SCOPED_TRACE(describe(c));
    SafetensorsFile ref(test::fixture_dir(c.fixture) + "/reference.safetensors");
    const Batch batch = test::fixture_batch(ref);
    TestRun cpu(c.fixture, c.dtype, TestBackend::Cpu), nan(c.fixture, c.dtype, TestBackend::NanFill);
    TrainOptions o;
    o.optimizer = c.optimizer;
    o.bf16_gemm = c.bf16_gemm;
    o.fused_gemm_update = c.fused;
    o.checkpointing = c.ckpt;
    o.clip_grad_norm = c.clip_norm;
    o.loss_scale_init = 1024;
    Trainer ta = cpu.trainer(o), tb = nan.trainer(o);
    const double lr = c.optimizer == OptimizerKind::AdaLomo ? 1e-3
                      : c.optimizer == OptimizerKind::AdamW ? 1e-3
                                                            : 0.1;
    for (int step = 1; step <= 2; ++step) {
      const StepResult a = ta.step(batch, lr, step);
      StepResult b;
      try {
        b = tb.step(batch, lr, step);
      } catch (const Error& e) {
        FAIL() << "the NaN-filled run failed where the CPU run did not, step " << step << ": "
               << e.what();
      }
      ASSERT_EQ(a.loss, b.loss) << "step " << step;
      ASSERT_EQ(a.grad_norm, b.grad_norm) << "step " << step;
    }
    std::vector<float> la, lb;
    ASSERT_EQ(cpu.net.forward(batch, nullptr, &la), nan.net.forward(batch, nullptr, &lb));
    ASSERT_EQ(la, lb) << "logits";
    for (size_t i = 0; i < cpu.params().all().size(); ++i) {
      const Param& p = cpu.params().all()[i];
      const Param& q = nan.params().all()[i];
      ASSERT_EQ(std::memcmp(p.data.as<uint8_t>(), q.data.as<uint8_t>(), p.data.bytes()), 0)
          << "first differing tensor: " << p.name;
    }
    EXPECT_GT(dynamic_cast<test::NanFillBackend&>(*nan.backend).poisoned(), 0);
  }
}

}  // namespace
}  // namespace lomo
