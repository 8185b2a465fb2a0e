// LoRA against the independent reference (PEFT + transformers + torch, float64; see
// tests/tools/make_lora_fixtures.py): the adapters PEFT saved (lora_init/) load, and logits,
// loss, every adapter and base gradient, and 3 steps of LoRA alone (base frozen, AdamW on the
// adapters, with and without weight decay, and rsLoRA) and of LoRA + LOMO (base by LOMO = SGD,
// adapters by AdamW, with and without global-norm clipping over both) match, on the CPU backend
// and on the NaN-filling one. Tolerances are those of tests/test_reference.cpp and for the same
// reasons: 1e-5 logits, loss and parameters after 3 steps, 1e-4 gradients, each relative to the
// tensor's largest element.
//
// Then what the reference cannot see: PEFT's initialisation (B = 0 leaves the model unchanged,
// A within Kaiming-uniform's bound), a frozen base gets no gradient at all, the linear layer
// with dropout against finite differences, merging, and the adapter files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "model/linear.h"
#include "model/lora.h"
#include "model/lora_files.h"
#include "nan_backend.h"
#include "optim/lora_sink.h"
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

// Relative error of the logits at every position a sequence has (padding is not compared: no
// reference defines it).
double logits_error(const Batch& batch, int64_t V, const std::vector<float>& got,
                    const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double worst = 0;
  for (int64_t b = 0; b < batch.B; ++b) {
    const size_t off = static_cast<size_t>(b * batch.T * V);
    worst = std::max(worst, rel_inf_error(got.data() + off, want.data() + off,
                                          static_cast<size_t>(batch.lengths[b] * V)));
  }
  return worst;
}

class LoraReference : public ::testing::TestWithParam<std::tuple<std::string, TestBackend>> {
 protected:
  void SetUp() override {
    ref_ = std::make_unique<SafetensorsFile>(fixture_dir(fixture()) + "/lora_reference.safetensors");
    batch_ = fixture_batch(*ref_);
  }
  const std::string& fixture() const { return std::get<0>(GetParam()); }
  std::string name() const {
    return fixture() + " on " + test::test_backend_name(std::get<1>(GetParam()));
  }
  std::unique_ptr<TestRun> load() {
    return std::make_unique<TestRun>(fixture(), StorageDtype::F32, std::get<1>(GetParam()));
  }
  // The adapters PEFT saved before training, optionally as rsLoRA.
  std::unique_ptr<LoraAdapters> adapters(const TestRun& run, bool rslora = false) {
    const std::string dir = fixture_dir(fixture()) + "/lora_init";
    LoraConfig cfg = read_peft_adapter_config(dir);
    cfg.rslora = rslora;
    auto a = std::make_unique<LoraAdapters>(cfg, run.config(), const_cast<TestRun&>(run).tracker);
    load_peft_adapter(dir, *a);
    return a;
  }
  double meta(const std::string& k) const { return std::stod(ref_->metadata().at(k)); }
  // Compares "<prefix><name>" for every tensor, relative to its largest element. adamw: the
  // tensors were stepped by AdamW, whose per-element step lr·m/(√v + ε) divides each gradient
  // element by its own magnitude, so an element whose gradient is tiny against the tensor's
  // largest amplifies our fp32 rounding by (|g|+ε)⁻²·ε: measured, qwen2_bias layer 1 q_proj
  // lora_B, an element with |g| = 3.8e-6 of the largest, error 1.6e-5. Elements whose reference
  // gradient at the start is below 1e-4 of the tensor's largest are held to 1e-3 instead (a
  // skipped or wrong-signed step is lr = 1e-3 per step, ≥ 2e-2 of these tensors' largest).
  void expect_tensors(std::vector<Param>& params, const std::string& prefix, double tol,
                      const char* what, bool adamw = false) {
    double worst = 0, worst_small = 0;
    for (auto& p : params) {
      const auto want = read_tensor(*ref_, prefix + p.name);
      std::vector<float> got(static_cast<size_t>(p.numel()));
      p.to_f32(got.data());
      std::vector<float> g;
      float g_max = 0;
      if (adamw) {
        g = read_tensor(*ref_, "grad." + p.name);
        for (float x : g) g_max = std::max(g_max, std::abs(x));
      }
      double scale = 1e-30;
      for (float x : want) scale = std::max(scale, static_cast<double>(std::abs(x)));
      for (size_t i = 0; i < want.size(); ++i) {
        const double e = std::abs(static_cast<double>(got[i]) - want[i]) / scale;
        const bool small = adamw && std::abs(g[i]) < 1e-4 * g_max;
        ASSERT_LE(e, small ? 1e-3 : tol)
            << name() << ": first failing " << what << " " << prefix << p.name << " element " << i
            << (small ? " (tiny gradient)" : "");
        (small ? worst_small : worst) = std::max(small ? worst_small : worst, e);
      }
    }
    std::printf("  %s %s%s: worst error %.2e (tolerance %.0e)", name().c_str(), prefix.c_str(),
                what, worst, tol);
    if (worst_small > 0) std::printf(", %.2e where the gradient is < 1e-4 of the largest", worst_small);
    std::printf("\n");
  }
  std::unique_ptr<SafetensorsFile> ref_;
  Batch batch_;
};

TEST_P(LoraReference, PeftAdaptersGiveTheLogitsAndLoss) {
  for (const bool rslora : {false, true}) {
    const auto run = load();
    const auto lora = adapters(*run, rslora);
    run->net.set_lora(lora.get());
    std::vector<float> logits;
    const double loss = run->net.forward(batch_, nullptr, &logits);
    const std::string p = rslora ? "rslora." : "";
    const auto want = read_tensor(*ref_, p + "logits");
    const double e = logits_error(batch_, run->config().vocab, logits, want);
    EXPECT_LE(e, 1e-5) << name();
    const double want_loss = read_tensor(*ref_, p + "loss")[0];
    EXPECT_NEAR(loss, want_loss, 1e-5 * want_loss) << name();
    std::printf("  %s%s: logits error %.2e (tolerance 1e-5)\n", name().c_str(),
                rslora ? " rsLoRA" : "", e);
  }
}

TEST_P(LoraReference, AdapterAndBaseGradients) {
  for (Checkpointing ck : {Checkpointing::On, Checkpointing::Off}) {
    const auto run = load();
    const auto lora = adapters(*run);
    run->net.set_lora(lora.get());
    StoredGradients base = run->stored_gradients();
    StoredGradients adapter(lora->all(), run->tracker, *run->backend);
    StoreSink base_sink(base);
    LoraSink sink(&base_sink, adapter);
    const double loss = run->net.forward_backward(batch_, sink, ck);
    EXPECT_NEAR(loss, read_tensor(*ref_, "loss")[0], 1e-5 * loss);
    double worst = 0;
    for (auto* set : {&run->params().all(), &lora->all()}) {
      StoredGradients& g = set == &lora->all() ? adapter : base;
      for (auto& p : *set) {
        const auto want = read_tensor(*ref_, "grad." + p.name);
        const double e = rel_inf_error(g.buffer_for(p), want.data(), want.size());
        ASSERT_LE(e, 1e-4) << name() << ": first failing gradient " << p.name;
        worst = std::max(worst, e);
      }
    }
    std::printf("  %s: worst gradient error %.2e, checkpointing %s (tolerance 1e-4)\n",
                name().c_str(), worst, ck == Checkpointing::On ? "on" : "off");
  }
}

struct LoraVariant {
  const char* prefix;
  bool base_frozen;
  bool fused = false;  // the base's zero-buffer update
  OptimizerKind optimizer = OptimizerKind::Lomo;
};

TEST_P(LoraReference, ThreeStepsMatchPeft) {
  const std::vector<LoraVariant> variants = {
      {"lora_only", true},          {"lora_only_wd", true},
      {"rslora_only", true},        {"lora_lomo", false},
      {"lora_lomo", false, true},   {"lora_lomo_clipnorm", false},
      {"lora_lomo_clipnorm", false, true},
  };
  const int steps = static_cast<int>(meta("steps"));
  for (const auto& v : variants) {
    const std::string prefix = v.prefix;
    SCOPED_TRACE(prefix + (v.fused ? " (zero-buffer update)" : ""));
    const auto run = load();
    const auto lora = adapters(*run, prefix == "rslora_only");
    std::vector<float> base_before(static_cast<size_t>(run->params().total_numel()));
    TrainOptions o;
    o.optimizer = v.optimizer;
    o.fused_gemm_update = v.fused;
    o.lora = lora.get();
    o.base_frozen = v.base_frozen;
    if (prefix == "lora_only_wd") {
      o.lora_weight_decay = static_cast<float>(meta("adapter_weight_decay_wd"));
    }
    if (prefix == "lora_lomo_clipnorm") o.clip_grad_norm = static_cast<float>(meta("clip_norm"));
    Trainer trainer = run->trainer(o);
    const auto want_loss = read_tensor(*ref_, prefix + ".loss");
    for (int s = 0; s < steps; ++s) {
      const StepResult r = trainer.step(batch_, v.base_frozen ? 0.0 : meta("base_lr"), s + 1,
                                        meta("adapter_lr"));
      EXPECT_NEAR(r.loss, want_loss[s], 1e-5 * want_loss[s]) << "step " << s + 1;
      if (prefix == "lora_lomo_clipnorm") {
        ASSERT_LT(r.clip_coef, 1.0) << "clipping must be active";
      }
    }
    expect_tensors(lora->all(), prefix + ".", 1e-5, "adapters", /*adamw=*/true);
    if (v.base_frozen) {
      // Untouched, to the bit: the reference's base is the fixture's model itself.
      const TestRun fresh(fixture());
      for (size_t i = 0; i < run->params().all().size(); ++i) {
        const Param& a = run->params().all()[i];
        const Param& b = fresh.model.params.all()[i];
        ASSERT_EQ(0, std::memcmp(a.data.as<void>(), b.data.as<void>(), a.data.bytes())) << a.name;
      }
    } else {
      expect_tensors(run->params().all(), prefix + ".", 1e-5, "base");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, LoraReference,
    ::testing::Combine(::testing::Values("llama_gqa", "smollm_tied", "qwen2_bias"),
                       ::testing::Values(TestBackend::Cpu, TestBackend::NanFill)),
    [](const auto& info) {
      return std::get<0>(info.param) + "_" + test::test_backend_name(std::get<1>(info.param));
    });

// A sink that records which tensors backward asked a buffer for.
class RecordingSink : public GradSink {
 public:
  RecordingSink(GradSink& inner) : inner_(inner) {}
  bool trains(const Param& p) const override { return inner_.trains(p); }
  float* gradient_buffer(const Param& p) override {
    asked.push_back(p.name);
    return inner_.gradient_buffer(p);
  }
  void consume(Param& p, float* g) override { inner_.consume(p, g); }
  std::optional<SgdStep> fused_update(const Param& p) override {
    asked.push_back("fused " + p.name);
    return inner_.fused_update(p);
  }
  std::vector<std::string> asked;

 private:
  GradSink& inner_;
};

TEST(Lora, PeftInitLeavesTheModelUnchangedAndAWithinKaimingBound) {
  TestRun run("llama_gqa");
  const auto ref = SafetensorsFile(fixture_dir("llama_gqa") + "/reference.safetensors");
  const Batch batch = fixture_batch(ref);
  std::vector<float> base_logits, lora_logits;
  run.net.forward(batch, nullptr, &base_logits);
  LoraConfig cfg{.rank = 4, .alpha = 8, .targets = parse_lora_targets("all")};
  LoraAdapters lora(cfg, run.config(), run.tracker);
  lora.init(7);
  run.net.set_lora(&lora);
  run.net.forward(batch, nullptr, &lora_logits);
  // B = 0: s·u·Bᵀ adds exact zeros.
  ASSERT_EQ(base_logits, lora_logits);
  for (const Param& p : lora.all()) {
    const float* x = p.data.f32();
    const int64_t n = p.numel();
    if (p.name.ends_with("lora_B.weight")) {
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(x[i], 0.0f) << p.name;
      continue;
    }
    // torch's kaiming_uniform_(a=√5) on (r, in): U(−1/√in, 1/√in), variance bound²/3.
    const double bound = 1.0 / std::sqrt(static_cast<double>(p.shape[1]));
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_LE(std::abs(x[i]), bound) << p.name;
      sum += x[i];
      sq += static_cast<double>(x[i]) * x[i];
    }
    // n = 128 or 256 draws: mean within 4 standard errors, variance within 35 %.
    const double var = bound * bound / 3;
    EXPECT_LT(std::abs(sum / n), 4 * std::sqrt(var / n)) << p.name;
    EXPECT_NEAR(sq / n, var, 0.35 * var) << p.name;
  }
  // Distinct tensors, distinct draws; the same seed, the same adapters.
  EXPECT_NE(0, std::memcmp(lora.all()[0].data.as<void>(), lora.all()[2].data.as<void>(), 4 * 4 * 4));
  LoraAdapters again(cfg, run.config(), run.tracker);
  again.init(7);
  EXPECT_EQ(0, std::memcmp(lora.all()[0].data.as<void>(), again.all()[0].data.as<void>(),
                           lora.all()[0].data.bytes()));
}

TEST(Lora, AFrozenBaseGetsNoGradientAtAll) {
  for (const char* fx : {"llama_gqa", "smollm_tied", "qwen2_bias"}) {
    TestRun run(fx);
    const auto ref = SafetensorsFile(fixture_dir(fx) + "/reference.safetensors");
    LoraAdapters lora({.rank = 2, .alpha = 4, .targets = parse_lora_targets("q,v,down")},
                      run.config(), run.tracker);
    lora.init(1);
    run.net.set_lora(&lora);
    StoredGradients g(lora.all(), run.tracker, *run.backend);
    LoraSink frozen(nullptr, g);
    RecordingSink rec(frozen);
    run.net.forward_backward(fixture_batch(ref), rec, Checkpointing::On);
    ASSERT_EQ(rec.asked.size(), lora.all().size()) << fx;
    for (const auto& n : rec.asked) EXPECT_NE(n.find("lora_"), std::string::npos) << n;
  }
}

// Dropout inside the model: the mask of a training forward, of the recomputed forward of a
// checkpointed block and of backward must be one mask. Every block recomputed and every block
// kept (the LM head in two passes both times) give the same gradients to the bit, and the adapters' gradients equal central differences of the training
// loss (which a mask differing between forward and backward would miss by O(1)).
TEST(Lora, DropoutMaskIsTheSameInForwardRecomputeAndBackward) {
  const auto ref = SafetensorsFile(fixture_dir("llama_gqa") + "/reference.safetensors");
  const Batch batch = fixture_batch(ref);
  std::vector<std::vector<float>> grads[2];
  const Checkpointing all_kept{INT64_MAX, true};
  for (const Checkpointing ck : {Checkpointing::On, all_kept}) {
    TestRun run("llama_gqa");
    LoraAdapters lora({.rank = 3, .alpha = 6, .dropout = 0.3f, .targets = parse_lora_targets("all")},
                      run.config(), run.tracker);
    lora.init(5);
    for (Param& p : lora.all()) {  // B non-zero, so that dA is too
      if (p.name.ends_with("lora_B.weight")) {
        for (int64_t i = 0; i < p.numel(); ++i) p.data.f32()[i] = 0.05f * static_cast<float>(counter_normal(9, p.id, i));
      }
    }
    run.net.set_lora(&lora, 17);
    run.net.set_lora_step(4);
    StoredGradients base = run.stored_gradients();
    StoredGradients adapter(lora.all(), run.tracker, *run.backend);
    StoreSink base_sink(base);
    LoraSink sink(&base_sink, adapter);
    run.net.forward_backward(batch, sink, ck);
    auto& out = grads[ck == Checkpointing::On ? 0 : 1];
    for (const Param& p : run.params().all()) {
      out.emplace_back(base.buffer_for(p), base.buffer_for(p) + p.numel());
    }
    for (const Param& p : lora.all()) {
      out.emplace_back(adapter.buffer_for(p), adapter.buffer_for(p) + p.numel());
    }
    if (ck == all_kept) continue;
    // Central differences of the training loss (same step: same masks) for a few elements.
    LoraSink frozen(nullptr, adapter);
    double worst = 0;
    for (const int which : {0, 9, 27}) {  // layer 0 q A, layer 0 down B, layer 1 down B
      Param& p = lora.all()[which];
      const float g_max = [&] {
        float m = 0;
        for (int64_t i = 0; i < p.numel(); ++i) m = std::max(m, std::abs(out[run.params().all().size() + which][i]));
        return m;
      }();
      for (const int64_t i : {int64_t{0}, p.numel() / 2, p.numel() - 1}) {
        const float keep = p.data.f32()[i];
        const float h = 1e-2f;
        p.data.f32()[i] = keep + h;
        const double up = run.net.forward_backward(batch, frozen, Checkpointing::On);
        p.data.f32()[i] = keep - h;
        const double down = run.net.forward_backward(batch, frozen, Checkpointing::On);
        p.data.f32()[i] = keep;
        const double fd = (up - down) / (2 * h);
        const double e = std::abs(fd - out[run.params().all().size() + which][i]) / g_max;
        EXPECT_LE(e, 2e-2) << p.name << " element " << i << ": fd " << fd << ", backward "
                           << out[run.params().all().size() + which][i];
        worst = std::max(worst, e);
      }
    }
    std::printf("  dropout 0.3 in the model: finite differences within %.1e of the largest gradient\n",
                worst);
  }
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (size_t t = 0; t < grads[0].size(); ++t) ASSERT_EQ(grads[0][t], grads[1][t]) << "tensor " << t;
}

// With B = 0 and no adapter learning rate the adapters change nothing, so the base trained beside
// them must be the base trained alone, to the bit: LOMO (buffered and zero-buffer) and AdaLomo
// under LoRA are the optimizers the reference tests check without it.
TEST(Lora, BaseBesideIdleAdaptersEqualsTheBaseAlone) {
  const auto ref = SafetensorsFile(fixture_dir("qwen2_bias") + "/reference.safetensors");
  const Batch batch = fixture_batch(ref);
  for (const auto& [opt, fused] : {std::pair{OptimizerKind::Lomo, false},
                                   std::pair{OptimizerKind::Lomo, true},
                                   std::pair{OptimizerKind::AdaLomo, false}}) {
    SCOPED_TRACE(std::string(optimizer_name(opt)) + (fused ? " zero-buffer" : ""));
    TestRun alone("qwen2_bias"), beside("qwen2_bias");
    LoraAdapters lora({.rank = 2, .alpha = 4, .targets = parse_lora_targets("all")},
                      beside.config(), beside.tracker);
    lora.init(3);
    TrainOptions o;
    o.optimizer = opt;
    o.fused_gemm_update = fused;  // (no clipping: dB is not zero, and would count in the norm)
    Trainer a = alone.trainer(o);
    o.lora = &lora;
    Trainer b = beside.trainer(o);
    for (int s = 1; s <= 3; ++s) {
      const double la = a.step(batch, 1e-2, s).loss;
      const double lb = b.step(batch, 1e-2, s, /*adapter_lr=*/0.0).loss;
      ASSERT_EQ(la, lb) << "step " << s;
    }
    for (size_t i = 0; i < alone.params().all().size(); ++i) {
      const Param& x = alone.params().all()[i];
      ASSERT_EQ(0, std::memcmp(x.data.as<void>(), beside.params().all()[i].data.as<void>(),
                               x.data.bytes())) << x.name;
    }
  }
}

// The linear layer with an adapter and dropout: Y is linear in X, W, A and B (and the mask is
// fixed by its key), so central differences with a step of 1 are exact but for rounding; the
// sums are in fp64.
TEST(Lora, LinearWithDropoutMatchesFiniteDifferences) {
  MemoryTracker tracker;
  auto backend = test::make_test_backend(TestBackend::NanFill);
  const int64_t N = 5, in = 6, out = 4, r = 3;
  ModelConfig c;
  c.d_model = in;
  c.n_head = 1;
  c.n_kv = 1;
  c.head_dim = out;  // q_proj: (out, in)
  c.d_ff = 8;
  c.n_layer = 1;
  LoraAdapters lora({.rank = r, .alpha = 6, .dropout = 0.4f, .targets = {LoraTarget::Q}}, c,
                    tracker);
  auto fill = [](float* x, int64_t n, uint64_t stream) {
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(counter_normal(3, stream, i));
  };
  Param W;
  W.name = "w";
  W.shape = {out, in};
  W.data = Buffer(tracker, MemCategory::Parameters, out * in * 4);
  fill(W.data.f32(), out * in, 1);
  Param& A = lora.all()[0];
  Param& B = lora.all()[1];
  fill(A.data.f32(), r * in, 2);
  fill(B.data.f32(), out * r, 3);
  std::vector<float> X(N * in), R(N * out), u(N * r), g(N * r), xd(N * in), Y(N * out);
  fill(X.data(), N * in, 4);
  fill(R.data(), N * out, 5);  // L = Σ R ⊙ Y
  WeightCache wc(tracker, *backend, out * in);
  LinearAdapter ad{.A = &A, .B = &B, .scale = 2.0f, .dropout = 0.4f, .dropout_key = 99,
                   .u = u.data(), .g = g.data(), .xd = xd.data()};
  auto loss = [&] {
    linear_forward(Y.data(), X.data(), W, nullptr, N, wc, &ad);
    double s = 0;
    for (int64_t i = 0; i < N * out; ++i) s += static_cast<double>(R[i]) * Y[i];
    return s;
  };
  StoredGradients base(std::vector<Param>{}, tracker, *backend);
  StoredGradients grads(lora.all(), tracker, *backend);
  class Store : public GradSink {
   public:
    explicit Store(int64_t n) : w(n) {}
    float* gradient_buffer(const Param&) override { return w.data(); }
    void consume(Param&, float*) override {}
    std::vector<float> w;
  } wsink(out * in);
  // W's gradient goes to wsink; the adapters' to `grads`.
  class Split : public GradSink {
   public:
    Split(GradSink& w, StoredGradients& a) : w_(w), a_(a) {}
    float* gradient_buffer(const Param& p) override {
      return p.role == ParamRole::Adapter ? a_.buffer_for(p) : w_.gradient_buffer(p);
    }
    void consume(Param&, float*) override {}
    GradSink& w_;
    StoredGradients& a_;
  } sink(wsink, grads);
  std::vector<float> dX(N * in);
  linear_backward(dX.data(), R.data(), X.data(), W, nullptr, N, DxMode::Overwrite, sink, wc, &ad);
  auto check = [&](float* x, int64_t n, const float* grad, const char* what) {
    double worst = 0, scale = 1e-30;
    for (int64_t i = 0; i < n; ++i) {
      const float keep = x[i];
      x[i] = keep + 1.0f;
      const double up = loss();
      x[i] = keep - 1.0f;
      const double down = loss();
      x[i] = keep;
      const double fd = (up - down) / 2;
      worst = std::max(worst, std::abs(fd - grad[i]));
      scale = std::max(scale, std::abs(fd));
    }
    EXPECT_LE(worst / scale, 1e-5) << what;
    std::printf("  dropout 0.4: %s relative error %.2e\n", what, worst / scale);
  };
  check(X.data(), N * in, dX.data(), "dX");
  check(W.data.f32(), out * in, wsink.w.data(), "dW");
  check(A.data.f32(), r * in, grads.buffer_for(A), "dA");
  check(B.data.f32(), out * r, grads.buffer_for(B), "dB");
  // The mask is real: about 40 % of drop(X) is zero.
  backend->dropout(xd.data(), X.data(), N * in, 0.4f, 99);
  const auto zeros = std::count(xd.begin(), xd.end(), 0.0f);
  EXPECT_GE(zeros, 4);
  EXPECT_LE(zeros, 22);
}

TEST(Lora, MergedModelGivesThePeftLogits) {
  for (const char* fx : {"llama_gqa", "smollm_tied", "qwen2_bias"}) {
    TestRun run(fx);
    const SafetensorsFile ref(fixture_dir(fx) + "/lora_reference.safetensors");
    const std::string dir = fixture_dir(fx) + "/lora_init";
    LoraAdapters lora(read_peft_adapter_config(dir), run.config(), run.tracker);
    load_peft_adapter(dir, lora);
    lora.merge_into(run.params());
    std::vector<float> logits;
    const Batch batch = fixture_batch(ref);
    run.net.forward(batch, nullptr, &logits);
    const double e = logits_error(batch, run.config().vocab, logits, read_tensor(ref, "logits"));
    EXPECT_LE(e, 1e-5) << fx;
    std::printf("  %s merged: logits error %.2e (tolerance 1e-5)\n", fx, e);
  }
}

TEST(Lora, AdapterFilesRoundTripAndBadConfigsAreRefused) {
  TestRun run("llama_gqa");
  LoraConfig cfg{.rank = 3, .alpha = 5, .dropout = 0.1f, .rslora = true,
                 .targets = parse_lora_targets("q,gate,down")};
  LoraAdapters lora(cfg, run.config(), run.tracker);
  lora.init(11);
  for (Param& p : lora.all()) {  // B non-zero too
    for (int64_t i = 0; i < p.numel(); ++i) p.data.f32()[i] += 0.01f * static_cast<float>(i % 7);
  }
  const std::string dir = test::temp_dir("lora_files");
  write_peft_adapter(dir, lora, "some/base");
  const LoraConfig back = read_peft_adapter_config(dir);
  EXPECT_EQ(back, cfg);
  LoraAdapters loaded(back, run.config(), run.tracker);
  load_peft_adapter(dir, loaded);
  for (size_t i = 0; i < lora.all().size(); ++i) {
    ASSERT_EQ(0, std::memcmp(lora.all()[i].data.as<void>(), loaded.all()[i].data.as<void>(),
                             lora.all()[i].data.bytes()));
  }
  // Another target list: the file holds tensors these adapters do not have.
  LoraAdapters other({.rank = 3, .alpha = 5, .targets = parse_lora_targets("q")}, run.config(),
                     run.tracker);
  EXPECT_THROW(load_peft_adapter(dir, other), Error);
  // What PEFT can express and this engine does not run is named.
  const std::string config = dir + "/adapter_config.json";
  const std::string good = test::read_file(config);
  for (const auto& [from, to, named] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"\"use_dora\": false", "\"use_dora\": true", "DoRA"},
           {"\"rank_pattern\": {}", "\"rank_pattern\": {\"q_proj\": 2}", "rank per layer"},
           {"\"q_proj\"", "\"c_attn\"", "c_attn"},
           {"\"peft_type\": \"LORA\"", "\"peft_type\": \"IA3\"", "only LoRA"},
           {"\"bias\": \"none\"", "\"bias\": \"all\"", "biases"}}) {
    std::string bad = good;
    ASSERT_NE(bad.find(from), std::string::npos) << from;
    bad.replace(bad.find(from), from.size(), to);
    test::write_file(config, bad);
    try {
      read_peft_adapter_config(dir);
      ADD_FAILURE() << "accepted " << to;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
    }
  }
  std::filesystem::remove_all(dir);
}

TEST(Lora, BadSettingsAreRefusedWithTheFlagNamed) {
  TestRun run("llama_gqa");  // d_model 32, q 32×32, k/v 16×32
  auto refuses = [&](LoraConfig c, const std::string& named) {
    try {
      LoraAdapters a(c, run.config(), run.tracker);
      ADD_FAILURE() << "accepted " << named;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
    }
  };
  refuses({.rank = 0, .targets = parse_lora_targets("q")}, "--lora-rank");
  refuses({.rank = 17, .targets = parse_lora_targets("k")}, "k_proj");  // k is 16 × 32
  refuses({.rank = 2, .alpha = 0, .targets = parse_lora_targets("q")}, "--lora-alpha");
  refuses({.rank = 2, .dropout = 1, .targets = parse_lora_targets("q")}, "--lora-dropout");
  EXPECT_THROW(parse_lora_targets("q,lm_head"), Error);
  EXPECT_THROW(parse_lora_targets(""), Error);
  EXPECT_EQ(lora_targets_string(parse_lora_targets("down_proj,q,all")), "q,k,v,o,gate,up,down");
  EXPECT_THROW(check_lora_optimizer(OptimizerKind::AdamW, StorageDtype::F32), Error);
  EXPECT_THROW(check_lora_optimizer(OptimizerKind::Sgd, StorageDtype::F32), Error);
  EXPECT_THROW(check_lora_optimizer(OptimizerKind::Lomo, StorageDtype::F16), Error);
  EXPECT_NO_THROW(check_lora_optimizer(OptimizerKind::AdaLomo, StorageDtype::BF16));
}

// The command line: plain LoRA writes only the adapter folder; --merge writes one model that
// scores as base + adapters does; --lora-resume continues from a folder; LoRA + LOMO writes the
// trained base with its adapters in OUT/adapter; lomo memory names the adapters' share.
TEST(Lora, TrainMergeResumeAndScoreFromTheCommandLine) {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir("lora_cli");
  const std::string model = fixture_dir("llama_gqa") + "/model", data = dir + "/data.jsonl";
  {
    std::string lines;
    for (int line = 0; line < 8; ++line) {
      lines += "{\"input_ids\": [";
      for (int t = 0; t < 6 + line % 5; ++t) {
        lines += (t ? ", " : "") + std::to_string((line * 29 + t * 13) % 90);
      }
      lines += "]}\n";
    }
    test::write_file(data, lines);
  }
  const std::string lomo = std::string(LOMO_BINARY) + " ";
  const std::string train = lomo + "train --model " + model + " --data " + data +
                            " --steps 3 --batch-size 4 --threads 1 --lora-rank 4 --lora-targets all"
                            " --lora-lr 1e-2 --lora-dropout 0.1";
  auto ok = [](const test::CommandResult& r) {
    EXPECT_EQ(r.status, 0) << r.output;
    return r.output;
  };
  const std::string out = ok(test::run_command(train + " --out " + dir + "/a 2>&1"));
  EXPECT_NE(out.find("lora    rank 4, alpha 8 (scaling 2)"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(dir + "/a/adapter_config.json"));
  EXPECT_TRUE(fs::exists(dir + "/a/adapter_model.safetensors"));
  EXPECT_FALSE(fs::exists(dir + "/a/model.safetensors")) << "a frozen base is not written again";
  ok(test::run_command(train + " --merge --out " + dir + "/merged 2>&1"));
  EXPECT_TRUE(fs::exists(dir + "/merged/model.safetensors"));
  EXPECT_FALSE(fs::exists(dir + "/merged/adapter_config.json"));
  // Base + adapters (unmerged products) and the merged model score the same, to fp32 rounding.
  const std::string with_lora =
      ok(test::run_command(lomo + "score --model " + model + " --lora " + dir + "/a --data " + data));
  const std::string merged = ok(test::run_command(lomo + "score --model " + dir + "/merged --data " + data));
  const std::string base = ok(test::run_command(lomo + "score --model " + model + " --data " + data));
  std::istringstream a(with_lora), m(merged), b(base);
  std::string la, lm, lb;
  int lines = 0, changed = 0;
  while (std::getline(a, la) && std::getline(m, lm) && std::getline(b, lb)) {
    const double x = nlohmann::json::parse(la)["loss"], y = nlohmann::json::parse(lm)["loss"];
    const double z = nlohmann::json::parse(lb)["loss"];
    EXPECT_NEAR(x, y, 1e-5 * y) << "line " << lines;
    if (std::abs(x - z) > 1e-3 * z) ++changed;
    ++lines;
  }
  EXPECT_EQ(lines, 8);
  EXPECT_GT(changed, 0) << "the adapters changed nothing: the test would prove nothing";
  // The merged model as GGUF scores as base + adapters too (smollm_tied: llama_gqa's llama3
  // RoPE scaling has no GGUF export yet).
  {
    const std::string tied = fixture_dir("smollm_tied") + "/model";
    const std::string t2 = lomo + "train --model " + tied + " --data " + data +
                           " --steps 3 --batch-size 4 --threads 1 --lora-rank 4 --lora-targets all"
                           " --lora-lr 1e-2";
    ok(test::run_command(t2 + " --out " + dir + "/t 2>&1"));
    ok(test::run_command(t2 + " --merge --out-format gguf --out " + dir + "/gguf 2>&1"));
    std::istringstream u(ok(test::run_command(lomo + "score --model " + tied + " --lora " + dir +
                                              "/t --data " + data)));
    std::istringstream g(ok(test::run_command(lomo + "score --model " + dir +
                                              "/gguf/model.gguf --data " + data)));
    int n = 0;
    while (std::getline(u, la) && std::getline(g, lm)) {
      const double x = nlohmann::json::parse(la)["loss"], y = nlohmann::json::parse(lm)["loss"];
      EXPECT_NEAR(x, y, 1e-5 * y) << "GGUF, line " << n;
      ++n;
    }
    EXPECT_EQ(n, 8);
  }
  // Plain LoRA writes no model, so an output format would do nothing: refused.
  EXPECT_EQ(test::run_command(train + " --out-format gguf --out " + dir + "/x 2>&1").status, 1);
  // Continuing from the adapters: they move on from where they were.
  const std::string resumed = ok(test::run_command(
      lomo + "train --model " + model + " --data " + data + " --steps 2 --threads 1 --lora-lr 1e-2"
      " --lora-resume " + dir + "/a --out " + dir + "/b 2>&1"));
  EXPECT_NE(resumed.find("adapters from " + dir + "/a"), std::string::npos) << resumed;
  EXPECT_NE(test::read_file(dir + "/a/adapter_model.safetensors"),
            test::read_file(dir + "/b/adapter_model.safetensors"));
  // Rank, alpha, targets and rsLoRA come from the folder; dropout from the flag (none here).
  LoraConfig continued = read_peft_adapter_config(dir + "/b");
  EXPECT_EQ(continued.dropout, 0.0f);
  continued.dropout = 0.1f;
  EXPECT_EQ(continued, read_peft_adapter_config(dir + "/a"));
  // LoRA + LOMO: OUT is the trained model, OUT/adapter its adapters, naming OUT as their base.
  ok(test::run_command(train + " --base-lr 0.1 --out " + dir + "/c 2>&1"));
  EXPECT_TRUE(fs::exists(dir + "/c/model.safetensors"));
  EXPECT_FALSE(fs::exists(dir + "/c/adapter_config.json"));
  const auto cfg = nlohmann::json::parse(test::read_file(dir + "/c/adapter/adapter_config.json"));
  EXPECT_EQ(cfg["base_model_name_or_path"], dir + "/c");
  EXPECT_NE(test::read_file(dir + "/c/model.safetensors"), test::read_file(model + "/model.safetensors"));
  // Given the output folder where its adapters are expected, the message points to them.
  const auto wrong = test::run_command(lomo + "score --model " + dir + "/c --lora " + dir +
                                       "/c --data " + data + " 2>&1");
  EXPECT_EQ(wrong.status, 1);
  EXPECT_NE(wrong.output.find("its adapters are in " + dir + "/c/adapter"), std::string::npos)
      << wrong.output;
  const std::string mem = ok(test::run_command(lomo + "memory --model " + model +
                                               " --lora-rank 4 --lora-targets all --seq-len 16"));
  // 2 layers × (q 4·(32+32) + k, v 4·(32+16) each + o 4·(32+32) + gate, up, down 4·(32+64) each)
  EXPECT_NE(mem.find("LoRA rank 4 on q,k,v,o,gate,up,down: 4096 adapter parameters"),
            std::string::npos) << mem;
  fs::remove_all(dir);
}

// lomo generate --lora merges the adapters as it loads: greedy text equal to the merged
// model's, and different from the base's (else the test would prove nothing); lomo eval --lora
// scores as the merged model does.
TEST(Lora, GenerateAndEvalWithAdaptersEqualTheMergedModel) {
  const std::string dir = test::temp_dir("lora_generate");
  const std::string model = fixture_dir("eval_model"), data = dir + "/data.jsonl";
  std::string lines;
  for (int line = 0; line < 8; ++line) {
    lines += "{\"input_ids\": [";
    for (int t = 0; t < 12; ++t) lines += (t ? ", " : "") + std::to_string((line * 97 + t * 31) % 2900);
    lines += "]}\n";
  }
  test::write_file(data, lines);
  const std::string lomo = std::string(LOMO_BINARY) + " ";
  const std::string train = lomo + "train --model " + model + " --data " + data +
                            " --steps 4 --batch-size 4 --threads 1 --lora-rank 4 --lora-targets all"
                            " --lora-lr 0.05 --lr-schedule constant --warmup-ratio 0";
  ASSERT_EQ(test::run_command(train + " --out " + dir + "/a 2>&1").status, 0);
  ASSERT_EQ(test::run_command(train + " --merge --out " + dir + "/m 2>&1").status, 0);
  const std::string gen = " --prompt \"The history of\" --temperature 0 --max-new-tokens 16"
                          " --ignore-eos --threads 1";
  const auto with_lora = test::run_command(lomo + "generate --model " + model + " --lora " + dir + "/a" + gen);
  const auto merged = test::run_command(lomo + "generate --model " + dir + "/m" + gen);
  const auto base = test::run_command(lomo + "generate --model " + model + gen);
  ASSERT_EQ(with_lora.status, 0) << with_lora.output;
  ASSERT_EQ(merged.status, 0) << merged.output;
  EXPECT_EQ(with_lora.output, merged.output);
  EXPECT_NE(with_lora.output, base.output) << "the adapters changed nothing";
  // lomo eval --lora (unmerged products) scores every candidate as the merged model does.
  const std::string copa = std::string(LOMO_TEST_DATA_DIR) + "/copa.jsonl";
  for (const auto& [m, extra, out] : {std::tuple{model, " --lora " + dir + "/a", dir + "/e_lora"},
                                      std::tuple{dir + "/m", std::string(), dir + "/e_merged"}}) {
    const auto r = test::run_command(lomo + "eval --model " + m + extra + " --data " + copa +
                                     " --task copa --threads 1 --out " + out + " 2>&1");
    ASSERT_EQ(r.status, 0) << r.output;
  }
  std::istringstream el(test::read_file(dir + "/e_lora")), em(test::read_file(dir + "/e_merged"));
  std::string a, b;
  int examples = 0;
  while (std::getline(el, a) && std::getline(em, b)) {
    const auto ja = nlohmann::json::parse(a), jb = nlohmann::json::parse(b);
    EXPECT_EQ(ja["prediction"], jb["prediction"]);
    ASSERT_EQ(ja["scores"].size(), jb["scores"].size());
    for (size_t i = 0; i < ja["scores"].size(); ++i) {
      const double x = ja["scores"][i], y = jb["scores"][i];
      EXPECT_NEAR(x, y, 1e-5 * std::abs(y)) << "example " << examples << ", candidate " << i;
    }
    ++examples;
  }
  EXPECT_GT(examples, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lomo
