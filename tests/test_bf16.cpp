// bf16 storage: compute is fp32 on exactly the stored values, and the update is fp32 arithmetic
// written back once (design §2 rule 5). With nearest rounding a bf16 step therefore equals the
// fp32 step, from the same bf16-representable weights, rounded to bf16 — bit for bit. Stochastic
// rounding is reproducible for a seed and unbiased.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "core/rng.h"
#include "core/rounding.h"
#include "ops/cpu/cpu_backend.h"
#include "test_run.h"
#include "test_util.h"

namespace lomo {
namespace {

using test::TestRun;

// The fixture model twice: in bf16, and in fp32 holding the same bf16-rounded values.
struct Pair {
  TestRun r16, r32;
  explicit Pair(const std::string& fixture)
      : r16(fixture, StorageDtype::BF16), r32(fixture, StorageDtype::F32) {
    for (auto& p : r32.params().all()) {
      if (p.shape.size() != 2) continue;
      for (int64_t i = 0; i < p.numel(); ++i) p.f()[i] = bf16_to_f32(f32_to_bf16(p.f()[i]));
    }
  }
};

TEST(Bf16, ForwardEqualsFp32OnTheSameValues) {
  Pair m("smollm_tied");
  SafetensorsFile ref(test::fixture_dir("smollm_tied") + "/reference.safetensors");
  const Batch batch = test::fixture_batch(ref);
  std::vector<float> la, lb;
  const double loss_a = m.r16.net.forward(batch, nullptr, &la);
  const double loss_b = m.r32.net.forward(batch, nullptr, &lb);
  EXPECT_EQ(loss_a, loss_b);
  EXPECT_EQ(la, lb);
  EXPECT_LT(m.r16.tracker.peak(MemCategory::Parameters),
            m.r32.tracker.peak(MemCategory::Parameters));
}

TEST(Bf16, NearestRoundedStepEqualsRoundedFp32Step) {
  for (const char* fixture : {"llama_gqa", "smollm_tied", "qwen2_bias"}) {
    for (bool fused : {false, true}) {
      for (OptimizerKind opt : {OptimizerKind::Lomo, OptimizerKind::AdaLomo}) {
        if (fused && opt == OptimizerKind::AdaLomo) continue;
        Pair m(fixture);
        SafetensorsFile ref(test::fixture_dir(fixture) + "/reference.safetensors");
        const Batch batch = test::fixture_batch(ref);
        TrainOptions o;
        o.optimizer = opt;
        o.fused_gemm_update = fused;
        o.rounding = Rounding::Nearest;
        Trainer ta = m.r16.trainer(o), tb = m.r32.trainer(o);
        const double lr = opt == OptimizerKind::Lomo ? 0.1 : 1e-3;
        ta.step(batch, lr, 1);
        tb.step(batch, lr, 1);
        for (size_t i = 0; i < m.r16.params().all().size(); ++i) {
          const Param& p16 = m.r16.params().all()[i];
          const Param& p32 = m.r32.params().all()[i];
          for (int64_t k = 0; k < p16.numel(); ++k) {
            const float want =
                p16.dtype == StorageDtype::BF16 ? bf16_to_f32(f32_to_bf16(p32.f()[k])) : p32.f()[k];
            const float got =
                p16.dtype == StorageDtype::BF16 ? bf16_to_f32(p16.h()[k]) : p16.f()[k];
            ASSERT_EQ(got, want) << fixture << " " << optimizer_name(opt)
                                 << (fused ? " fused " : " ") << p16.name << "[" << k << "]";
          }
        }
      }
    }
  }
}

TEST(Bf16, StochasticRoundingIsUnbiasedAndReproducible) {
  RoundingMode r{Rounding::Stochastic, 7, 3};
  const float x = 1.0f + 0.3f * std::ldexp(1.0f, -7);  // 30 % of the way from 1 to the next bf16
  double sum = 0;
  int up = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const float y = bf16_to_f32(round_bf16(x, r, 5, i));
    sum += y;
    up += y > 1.0f;
    ASSERT_TRUE(y == 1.0f || y == 1.0f + std::ldexp(1.0f, -7));
  }
  EXPECT_NEAR(static_cast<double>(up) / n, 0.3, 0.01);
  EXPECT_NEAR(sum / n, x, 1e-4 * x);
  // Same (seed, step, tensor, element): same result; another seed: another stream.
  EXPECT_EQ(round_bf16(x, r, 5, 123), round_bf16(x, r, 5, 123));
  int differ = 0;
  RoundingMode r2{Rounding::Stochastic, 8, 3};
  for (int i = 0; i < 1000; ++i) differ += round_bf16(x, r, 5, i) != round_bf16(x, r2, 5, i);
  EXPECT_GT(differ, 100);
  // Values already representable never move; infinities stay.
  for (int i = 0; i < 100; ++i) EXPECT_EQ(bf16_to_f32(round_bf16(1.5f, r, 1, i)), 1.5f);
  EXPECT_EQ(f32_to_bf16_stochastic(INFINITY, 0xffff), 0x7f80);
}

// --bf16-gemm: the linear layers multiply the stored bf16 weights with bf16-rounded activations.
// Against the fp32-product path on the same values (itself checked bit for bit above and against
// PyTorch in test_reference): the loss within 1e-3 relative, every gradient and every parameter
// after a LOMO step within the error bf16 activations (8 significant bits, 2^-9 relative) explain
// — and far from the O(1) a wrong layout or transpose gives.
TEST(Bf16, Bf16ProductsTrackFp32Products) {
  for (const char* fixture : {"llama_gqa", "smollm_tied", "qwen2_bias"}) {
    SafetensorsFile ref(test::fixture_dir(fixture) + "/reference.safetensors");
    const Batch batch = test::fixture_batch(ref);
    // Gradients, by a store sink.
    // Modes: fp32 products; bf16 products, everything recomputed (the two-pass LM head);
    // bf16 products, nothing recomputed (the one-pass LM head).
    std::vector<std::vector<float>> grads[3];
    double loss[3];
    for (int mode = 0; mode < 3; ++mode) {
      TestRun run(fixture, StorageDtype::BF16);
      run.net.set_bf16_gemm(mode >= 1);
      StoredGradients store = run.stored_gradients();
      StoreSink sink(store);
      loss[mode] = run.net.forward_backward(batch, sink,
                                            mode == 2 ? Checkpointing::Off : Checkpointing::On);
      for (auto& p : run.params().all()) {
        grads[mode].emplace_back(store.buffer_for(p), store.buffer_for(p) + p.numel());
      }
    }
    double worst = 0;
    for (int mode = 1; mode < 3; ++mode) {
      EXPECT_NEAR(loss[mode], loss[0], 1e-3 * loss[0]) << fixture << " mode " << mode;
      for (size_t i = 0; i < grads[0].size(); ++i) {
        const double e = test::rel_inf_error(grads[mode][i].data(), grads[0][i].data(),
                                             grads[0][i].size());
        worst = std::max(worst, e);
        EXPECT_LE(e, 2e-2) << fixture << " mode " << mode << " gradient " << i;
      }
    }
    std::printf("  %s: bf16 products: loss %.6f vs %.6f, worst gradient error %.2e (tolerance 2e-2)\n",
                fixture, loss[1], loss[0], worst);
    // A fused LOMO step: the parameters move by lr·g; their change agrees to the same order.
    TestRun a(fixture, StorageDtype::BF16), b(fixture, StorageDtype::BF16);
    TrainOptions o;
    o.fused_gemm_update = true;
    o.rounding = Rounding::Nearest;
    Trainer ta = a.trainer(o);
    o.bf16_gemm = true;
    Trainer tb = b.trainer(o);
    ta.step(batch, 0.1, 1);
    tb.step(batch, 0.1, 1);
    for (size_t i = 0; i < a.params().all().size(); ++i) {
      const Param& p = a.params().all()[i];
      const Param& q = b.params().all()[i];
      std::vector<float> x(p.numel()), y(q.numel());
      p.to_f32(x.data());
      q.to_f32(y.data());
      // One bf16 ulp of the parameter (rounding the update) or 2e-2 of its change.
      EXPECT_LE(test::rel_inf_error(y.data(), x.data(), x.size()), 1e-2) << fixture << " " << p.name;
    }
  }
}

// Under bf16 products W has no fp32 view, so the zero-buffer update writes it through an fp32
// block of rows at a time (model/weights.h). Each element must end where the buffered gradient
// step puts it: W − lr·g from the same bf16 products, within one bf16 ulp (the GEMM's alpha·acc +
// W rounds once where the step rounds lr·g first). lr = 1 makes the changes several ulps, so a
// block with the wrong rows of dY, or written to the wrong rows of W, fails.
TEST(Bf16, FusedUpdateByRowBlocksMatchesTheGradientStep) {
  for (const char* fixture : {"llama_gqa", "smollm_tied", "qwen2_bias"}) {
    SafetensorsFile ref(test::fixture_dir(fixture) + "/reference.safetensors");
    const Batch batch = test::fixture_batch(ref);
    TestRun a(fixture, StorageDtype::BF16), b(fixture, StorageDtype::BF16);
    a.net.set_bf16_gemm(true);
    StoredGradients store = a.stored_gradients();
    StoreSink sink(store);
    a.net.forward_backward(batch, sink, Checkpointing::On);
    TrainOptions o;
    o.fused_gemm_update = true;
    o.bf16_gemm = true;
    o.rounding = Rounding::Nearest;
    Trainer tb = b.trainer(o);
    const double lr = 1.0;
    tb.step(batch, lr, 1);
    int blocked = 0, moved = 0;
    for (size_t i = 0; i < a.params().all().size(); ++i) {
      const Param& w0 = a.params().all()[i];  // unchanged: a only stored its gradients
      const Param& w1 = b.params().all()[i];
      if (w0.role != ParamRole::BlockLinear) continue;
      const WeightCache wc(a.params(), a.tracker, *a.backend);
      blocked += wc.update_rows(w0) < w0.shape[0];
      const float* g = store.buffer_for(w0);
      for (int64_t k = 0; k < w0.numel(); ++k) {
        const float before = bf16_to_f32(w0.h()[k]);
        const float want = before - static_cast<float>(lr) * g[k];
        const float got = bf16_to_f32(w1.h()[k]);
        const float ulp = std::ldexp(1.0f, std::ilogb(want) - 7);
        ASSERT_LE(std::abs(got - want), ulp) << fixture << " " << w0.name << "[" << k << "]";
        moved += got != before;
      }
    }
    EXPECT_GT(blocked, 0) << fixture << ": no tensor was updated in more than one row block";
    EXPECT_GT(moved, 100) << fixture;
  }
}

// A row block's stochastic rounding keys its elements by their index in the whole tensor
// (ParamView::first), so storing a tensor block by block rounds every element as storing it whole.
TEST(Bf16, StochasticStoreOfRowBlocksEqualsTheWholeTensor) {
  TestRun run("llama_gqa", StorageDtype::BF16);
  Backend& be = *run.backend;
  Param& w = *run.params().layers[0].w_down;  // (32, 64)
  const int64_t rows = w.shape[0], cols = w.shape[1], n = w.numel();
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) x[k] = 0.1f + 0.3f * std::ldexp(1.0f, -12) * (k % 7);
  const RoundingMode r{Rounding::Stochastic, 11, 5};
  be.store(w.view(), x.data(), r);  // a CPU run: the backend reads host memory
  const std::vector<uint16_t> whole(w.h(), w.h() + n);
  for (int64_t r0 = 0; r0 < rows; r0 += 5) {
    const int64_t m = std::min<int64_t>(5, rows - r0);
    be.store(w.view().row_block(r0, m), x.data() + r0 * cols, r);
  }
  int differ_from_local_keys = 0;
  for (int64_t k = 0; k < n; ++k) {
    ASSERT_EQ(w.h()[k], whole[k]) << "element " << k;
    differ_from_local_keys += round_bf16(x[k], r, w.view().id, k % (5 * cols)) != whole[k];
  }
  EXPECT_GT(differ_from_local_keys, 0) << "the blocks' own indices would round alike";
}

// In-place conversion (the MLP's d_ff-wide operands of bf16 products) writes the codes to_bf16
// writes, for lengths that end inside the first serial run, at its edge, and across several
// parallel pieces, and touches nothing past the array.
TEST(Bf16, InPlaceConversionEqualsTheCopy) {
  CpuBackend be;
  constexpr int64_t kGuard = 16;
  for (const int64_t n : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{513}, int64_t{65536},
                          int64_t{65537}, int64_t{131073}, int64_t{(1 << 20) + 7}}) {
    std::vector<float> x(static_cast<size_t>(n + kGuard));  // (n) then a guard
    for (int64_t i = 0; i < n; ++i) {
      // Values with ties, denormals, infinities and NaN among them, then random ones.
      const float special[] = {1.0f + std::ldexp(1.0f, -8), -0.0f, 1e-40f, INFINITY, NAN,
                               -3.0f - std::ldexp(1.0f, -8) * 3};
      x[i] = i < 6 ? special[i] : static_cast<float>(counter_normal(3, 1, i) * 1e3);
    }
    for (int64_t g = 0; g < kGuard; ++g) x[n + g] = -7.5f;
    std::vector<uint16_t> want(static_cast<size_t>(n));
    be.to_bf16(want.data(), x.data(), n);
    be.to_bf16_in_place(x.data(), n);
    std::vector<uint16_t> got(static_cast<size_t>(n));
    std::memcpy(got.data(), x.data(), static_cast<size_t>(n) * 2);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << "n " << n << ", element " << i;
    for (int64_t g = 0; g < kGuard; ++g) ASSERT_EQ(x[n + g], -7.5f) << "n " << n << ", guard " << g;
  }
}

}  // namespace
}  // namespace lomo
