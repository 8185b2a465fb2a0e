// The engine against the independent reference (PyTorch + transformers, float64; see
// tests/tools/make_fixtures.py): logits, loss, every gradient, and parameters after 3 steps of
// LOMO (== SGD, design §2 rule 3), SGD and AdamW, for three architectures — on the CPU backend,
// on the NaN-filling backend (tests/nan_backend.h), which proves that no op leaves part of an
// output unwritten: the same tolerances hold with every output poisoned before it is written; on
// the far backend (memory the host cannot touch); and on a GPU (CUDA, fp32 products without TF32:
// the same tolerances), skipped with the reason where there is none.
//
// Tolerances. Our arithmetic is fp32 (unit roundoff u = 6e-8) against an fp64 reference, so the
// errors below are ours alone. Each is relative to the tensor's own largest element.
//  * logits, loss: 1e-5. A 2-layer model has ~10 dependent fp32 ops per output, each with
//    dot products of length ≤ 80 whose error is ≲ √K·u·(condition). Measured: ≤ 5.3e-7.
//  * gradients: 1e-4. Backward adds softmax and norm derivatives whose cancellations amplify
//    rounding (dS = P ⊙ (dP − Σ dP·P)); small tensors like biases sum N = 27 rows. Measured:
//    ≤ 7.6e-7 (2026-11-28), so 1e-4 leaves room for other BLAS kernels, not for real bugs.
//  * parameters after 3 steps: 1e-5. p − 0.1·g changes p by ~1 %; a 1e-4 relative error in g
//    is then ≤ 1e-6 of p. Measured: ≤ 1e-6 (AdamW), ≤ 3.3e-7 (SGD/LOMO). Skipping one update
//    would show as ~1e-2.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>

#include "far_backend.h"
#include "nan_backend.h"
#include "test_run.h"
#include "test_util.h"

namespace lomo {
namespace {

using test::fixture_batch;
using test::fixture_dir;
using test::read_tensor;
using test::rel_inf_error;
using test::TestBackend;
using test::TestRun;

class Reference : public ::testing::TestWithParam<std::tuple<std::string, TestBackend>> {
 protected:
  void SetUp() override {
    if (std::get<1>(GetParam()) == TestBackend::Cuda) {
      const std::string why = test::cuda_skip_reason();
      if (!why.empty()) GTEST_SKIP() << why;
    }
    ref_ = std::make_unique<SafetensorsFile>(fixture_dir(fixture()) + "/reference.safetensors");
    batch_ = fixture_batch(*ref_);
  }
  const std::string& fixture() const { return std::get<0>(GetParam()); }
  std::string name() const {
    return fixture() + " on " + test::test_backend_name(std::get<1>(GetParam()));
  }
  std::unique_ptr<TestRun> load() {
    return std::make_unique<TestRun>(fixture(), StorageDtype::F32, std::get<1>(GetParam()));
  }
  // The NaN-filling backend must actually have poisoned outputs, and the far one run ops, or
  // they proved nothing.
  void expect_checked(TestRun& run) {
    if (auto* nan = dynamic_cast<test::NanFillBackend*>(run.backend.get())) {
      EXPECT_GT(nan->poisoned(), 0) << name();
    }
    if (auto* far = dynamic_cast<test::FarBackend*>(run.backend.get())) {
      EXPECT_GT(far->ops(), 0) << name();
    }
  }
  // n fp32 values of the backend's memory, read through the backend (the far backend's memory
  // is out of the host's reach).
  static std::vector<float> host_copy(Backend& b, const float* x, int64_t n) {
    std::vector<float> h(static_cast<size_t>(n));
    b.copy_to_host(h.data(), x, h.size() * sizeof(float));
    return h;
  }
  double meta(const std::string& k) const { return std::stod(ref_->metadata().at(k)); }

  // Compares every parameter with "<prefix>.<name>" in the reference; reports the first failure.
  void expect_params(TestRun& run, const std::string& prefix, double tol) {
    double worst = 0;
    for (auto& p : run.params().all()) {
      const auto want = read_tensor(*ref_, prefix + "." + p.name);
      ASSERT_EQ(static_cast<int64_t>(want.size()), p.numel()) << p.name;
      const auto got = host_copy(*run.backend, p.f(), p.numel());
      const double e = rel_inf_error(got.data(), want.data(), want.size());
      ASSERT_LE(e, tol) << name() << ": first failing tensor " << prefix << "." << p.name;
      worst = std::max(worst, e);
    }
    std::printf("  %s %s: worst parameter error %.2e (tolerance %.0e)\n", name().c_str(),
                prefix.c_str(), worst, tol);
  }

  std::unique_ptr<SafetensorsFile> ref_;
  Batch batch_;
};

TEST_P(Reference, LogitsAndLoss) {
  const auto run = load();
  std::vector<float> logits, nll;
  const double loss = run->net.forward(batch_, &nll, &logits);
  expect_checked(*run);
  const auto want = read_tensor(*ref_, "logits");
  const float want_loss = read_tensor(*ref_, "loss")[0];
  EXPECT_NEAR(loss, want_loss, 1e-5 * std::abs(want_loss));
  ASSERT_EQ(logits.size(), want.size());
  const int64_t V = run->config().vocab;
  double worst = 0;
  for (int64_t b = 0; b < batch_.B; ++b) {
    const int64_t L = batch_.lengths[b];  // padding positions are not compared
    const size_t off = static_cast<size_t>(b * batch_.T * V);
    worst = std::max(worst, rel_inf_error(logits.data() + off, want.data() + off, L * V));
  }
  EXPECT_LE(worst, 1e-5) << name();
  // Per-position NLL: logsumexp − the target's logit from the reference logits (fp64) where a
  // position predicts a token, exactly 0 where it does not (padding, each sequence's last token).
  ASSERT_EQ(nll.size(), static_cast<size_t>(batch_.B * batch_.T));
  for (size_t r = 0; r < nll.size(); ++r) {
    const int32_t t = batch_.targets[r];
    if (t < 0) {
      ASSERT_EQ(nll[r], 0.0f) << name() << ": position " << r << " has no target";
      continue;
    }
    const float* row = want.data() + r * V;
    double mx = row[0], sum = 0;
    for (int64_t j = 1; j < V; ++j) mx = std::max(mx, static_cast<double>(row[j]));
    for (int64_t j = 0; j < V; ++j) sum += std::exp(row[j] - mx);
    const double want_nll = mx + std::log(sum) - row[t];
    ASSERT_NEAR(nll[r], want_nll, 1e-5 * std::max(1.0, want_nll)) << name() << ": position " << r;
  }
  std::printf("  %s: logits error %.2e, loss error %.2e (tolerance 1e-5)\n", name().c_str(),
              worst, std::abs(loss - want_loss) / std::abs(want_loss));
}

TEST_P(Reference, GradientsWithAndWithoutCheckpointing) {
  for (Checkpointing ck : {Checkpointing::On, Checkpointing::Off}) {
    const auto run = load();
    StoredGradients grads = run->stored_gradients();
    StoreSink sink(grads);
    const double loss = run->net.forward_backward(batch_, sink, ck);
    expect_checked(*run);
    EXPECT_NEAR(loss, read_tensor(*ref_, "loss")[0], 1e-5 * loss);
    double worst = 0;
    for (auto& p : run->params().all()) {
      const auto want = read_tensor(*ref_, "grad." + p.name);
      const auto got = host_copy(*run->backend, grads.buffer_for(p), p.numel());
      const double e = rel_inf_error(got.data(), want.data(), want.size());
      ASSERT_LE(e, 1e-4) << name() << ": first failing gradient " << p.name
                         << (ck == Checkpointing::On ? " (checkpointing on)" : " (off)");
      worst = std::max(worst, e);
    }
    std::printf("  %s: worst gradient error %.2e, checkpointing %s (tolerance 1e-4)\n",
                name().c_str(), worst, ck == Checkpointing::On ? "on" : "off");
  }
}

struct Variant {
  const char* fixture_prefix;
  OptimizerKind optimizer;
  bool fused = false;  // LOMO's zero-buffer update of linear weights
};

TEST_P(Reference, ThreeStepsMatchTorch) {
  const std::vector<Variant> variants = {
      {"sgd_plain", OptimizerKind::Lomo},
      {"sgd_clipnorm", OptimizerKind::Lomo},
      {"sgd_wd", OptimizerKind::Lomo},
      {"sgd_clipvalue", OptimizerKind::Lomo},
      {"sgd_plain", OptimizerKind::Sgd},
      {"sgd_clipnorm", OptimizerKind::Sgd},
      {"sgd_wd", OptimizerKind::Sgd},
      {"sgd_clipvalue", OptimizerKind::Sgd},
      {"adamw", OptimizerKind::AdamW},
      {"sgd_plain", OptimizerKind::Lomo, true},
      {"sgd_clipnorm", OptimizerKind::Lomo, true},
      {"sgd_wd", OptimizerKind::Lomo, true},
      {"adalomo", OptimizerKind::AdaLomo},
      {"adalomo_clipnorm", OptimizerKind::AdaLomo},
  };
  const int steps = static_cast<int>(meta("steps"));
  for (const auto& v : variants) {
    SCOPED_TRACE(std::string(v.fixture_prefix) + " with " + optimizer_name(v.optimizer) +
                 (v.fused ? " (zero-buffer update)" : ""));
    const std::string prefix = v.fixture_prefix;
    const auto run = load();
    TrainOptions o;
    o.optimizer = v.optimizer;
    o.fused_gemm_update = v.fused;
    double lr = meta("lr");
    if (prefix == "sgd_clipnorm") o.clip_grad_norm = static_cast<float>(meta("clip_norm"));
    if (prefix == "sgd_clipvalue") o.clip_grad_value = static_cast<float>(meta("clip_value"));
    if (prefix == "sgd_wd") o.weight_decay = static_cast<float>(meta("weight_decay"));
    if (prefix.rfind("adalomo", 0) == 0) {
      lr = meta("adalomo_lr");
      o.weight_decay = static_cast<float>(meta("adalomo_weight_decay"));
      if (prefix == "adalomo_clipnorm") o.clip_grad_norm = static_cast<float>(meta("clip_norm"));
    }
    if (prefix == "adamw") {
      lr = meta("adamw_lr");
      o.weight_decay = static_cast<float>(meta("weight_decay"));
    }
    Trainer trainer = run->trainer(o);
    for (int s = 0; s < steps; ++s) {
      const StepResult r = trainer.step(batch_, lr, s + 1);
      if (prefix == "sgd_clipnorm" || prefix == "adalomo_clipnorm") {
        ASSERT_LT(r.clip_coef, 1.0) << "clipping must be active";
      }
    }
    // AdamW divides by √v, so early steps move every weight by ≈ lr regardless of |g|; the
    // update is lr = 1e-3 of weights ~0.15, and our fp32 error in m/√v stays ≲ 1e-4 of that.
    expect_checked(*run);
    expect_params(*run, prefix, 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, Reference,
    ::testing::Combine(::testing::Values("llama_gqa", "smollm_tied", "qwen2_bias"),
                       ::testing::Values(TestBackend::Cpu, TestBackend::NanFill,
                                         TestBackend::Far, TestBackend::Cuda)),
    [](const auto& info) {
      return std::get<0>(info.param) + "_" + test::test_backend_name(std::get<1>(info.param));
    });

}  // namespace
}  // namespace lomo
