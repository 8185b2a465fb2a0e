// The per-pass gradient checks (optim/gradient_checks.h): each sink queues one check per tensor
// and the pass's table is read back once, after the pass — no host synchronisation per tensor
// on a GPU — while the first bad tensor is still the one named, in the order backward reached
// them. Checked on the CPU, on the far backend (whose memory the host cannot touch, as a GPU's),
// and through a training step whose gradients go non-finite.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"
#include "far_backend.h"
#include "ops/cpu/cpu_backend.h"
#include "optim/sinks.h"
#include "test_run.h"
#include "test_util.h"

namespace lomo {
namespace {

// The CPU backend, counting the calls that wait for a result or read memory back.
class CountingBackend final : public CpuBackend {
 public:
  CountingBackend() : CpuBackend(1) {}
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    ++reads;
    CpuBackend::copy_to_host(dst, src, bytes);
  }
  bool all_finite(const float* g, int64_t n) override {
    ++waits;
    return CpuBackend::all_finite(g, n);
  }
  bool any_beyond(const float* g, int64_t n, float limit) override {
    ++waits;
    return CpuBackend::any_beyond(g, n, limit);
  }
  double sum_squares(const float* g, int64_t n) override {
    ++waits;
    return CpuBackend::sum_squares(g, n);
  }
  int reads = 0, waits = 0;
};

Param vector_param(int id, const std::string& name, int64_t n) {
  Param p;
  p.id = id;
  p.name = name;
  p.shape = {n};
  p.role = ParamRole::Norm;
  return p;
}

// Gradients in the backend's memory.
struct Grads {
  Grads(Backend& b, MemoryTracker& t, const std::vector<std::vector<float>>& values) : be(b) {
    for (const auto& v : values) {
      bufs.emplace_back(b.allocator(), t, MemCategory::Gradients, v.size() * 4);
      b.copy_to_device(bufs.back().f32(), v.data(), v.size() * 4);
    }
  }
  std::vector<float> read(size_t i) {
    std::vector<float> v(bufs[i].bytes() / 4);
    be.copy_to_host(v.data(), bufs[i].f32(), bufs[i].bytes());
    return v;
  }
  Backend& be;
  std::vector<Buffer> bufs;
};

TEST(GradientChecks, NameTheFirstBadTensorInCheckOrderOnEveryBackend) {
  for (test::TestBackend which : {test::TestBackend::Cpu, test::TestBackend::Far}) {
    SCOPED_TRACE(test::test_backend_name(which));
    const auto backend = test::make_test_backend(which);
    MemoryTracker tracker;
    GradientChecks checks(4, tracker, *backend);
    EXPECT_EQ(tracker.current(MemCategory::Workspace, backend->allocator().device()),
              GradientChecks::table_bytes(4));
    std::vector<Param> ps;
    ps.push_back(vector_param(0, "a", 3));
    ps.push_back(vector_param(1, "b", 2));
    ps.push_back(vector_param(2, "c", 2));
    ps.push_back(vector_param(3, "d", 1));
    Grads g(*backend, tracker,
            {{1, -2, 3}, {0.5f, INFINITY}, {NAN, 1}, {70000}});
    checks.begin();
    for (size_t i = 0; i < 4; ++i) checks.check(ps[i], g.bufs[i].f32(), 0, INFINITY);
    GradientChecks::Result r = checks.read();
    EXPECT_EQ(r.first_bad, "b") << "b (inf) comes before c (NaN)";
    EXPECT_FALSE(std::isfinite(r.sum_squares));

    // A new pass forgets the last; clipping by value happens in place, before the sum, and the
    // limit is tested on the raw values (fp16's overflow: 70000 > 65504 even when clipped to 2).
    checks.begin();
    checks.check(ps[0], g.bufs[0].f32(), 2.0f, 65504.0f);
    checks.check(ps[3], g.bufs[3].f32(), 2.0f, 65504.0f);
    r = checks.read();
    EXPECT_EQ(r.first_bad, "d");
    EXPECT_EQ(r.sum_squares, (1.0 + 4.0 + 4.0) + 4.0);
    EXPECT_EQ(g.read(0), (std::vector<float>{1, -2, 2}));
    EXPECT_EQ(g.read(3), (std::vector<float>{2}));

    checks.begin();
    checks.check(ps[0], g.bufs[0].f32(), 0, INFINITY);
    r = checks.read();
    EXPECT_EQ(r.first_bad, "");
    EXPECT_EQ(r.sum_squares, 9.0);

    checks.begin();
    EXPECT_EQ(checks.read().sum_squares, 0.0) << "an empty pass";
    for (int i = 0; i < 4; ++i) checks.check(ps[0], g.bufs[0].f32(), 0, INFINITY);
    EXPECT_THROW(checks.check(ps[0], g.bufs[0].f32(), 0, INFINITY), std::logic_error)
        << "a fifth check in a table of four";
  }
}

TEST(GradientChecks, SinksWaitOncePerPassNotOncePerTensor) {
  CountingBackend be;
  MemoryTracker tracker;
  std::vector<Param> ps;
  std::vector<std::vector<float>> values;
  for (int i = 0; i < 6; ++i) {
    ps.push_back(vector_param(i, "t" + std::to_string(i), 5));
    values.push_back({0.5f, -1, 2, 0.25f, static_cast<float>(i)});
  }
  for (auto& p : ps) p.data = Buffer(be.allocator(), tracker, MemCategory::Parameters, 5 * 4);
  Grads g(be, tracker, values);
  ReusableGradients grads(ps, -1, tracker, be);
  GradientChecks checks(ps.size(), tracker, be);
  {
    NormSink norm(grads, checks, 0.0f, 65504.0f);
    for (size_t i = 0; i < ps.size(); ++i) norm.consume(ps[i], g.bufs[i].f32());
    EXPECT_EQ(be.reads + be.waits, 0) << "the norm pass waited for a tensor's check";
    double want = 0;
    for (const auto& v : values) {
      for (float x : v) want += static_cast<double>(x) * x;
    }
    EXPECT_DOUBLE_EQ(norm.norm(), std::sqrt(want));
    EXPECT_EQ(norm.first_nonfinite(), "");
    EXPECT_EQ(be.reads, 1);
    EXPECT_EQ(be.waits, 0);
  }
  {
    // LOMO's pass: the update of the last tensor runs (no wait), its check is read by the
    // trainer after the pass (check_update_pass) — here, by hand.
    LomoUpdate u;
    u.lr = 0.1f;
    LomoSink sink(grads, checks, u);
    be.reads = 0;
    for (size_t i = 0; i < ps.size(); ++i) sink.consume(ps[i], g.bufs[i].f32());
    EXPECT_EQ(be.reads + be.waits, 0) << "the update pass waited for a tensor's check";
    EXPECT_EQ(checks.read().first_bad, "");
    EXPECT_EQ(be.reads, 1);
  }
}

// The CPU backend, writing NaN into the norm-weight gradients of the `first`-th RMSNorm backward
// after arm() and the one after it: gradients go bad while the loss and every other gradient
// stay finite.
class PoisonedNormGradient final : public CpuBackend {
 public:
  PoisonedNormGradient() : CpuBackend(1) {}
  void arm(int first) {
    first_ = first;
    calls_ = 0;
  }
  void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* rstd,
                        const float* w, int64_t N, int64_t d) override {
    CpuBackend::rmsnorm_backward(dx, dw, dy, x, rstd, w, N, d);
    ++calls_;
    if (first_ > 0 && (calls_ == first_ || calls_ == first_ + 1)) dw[d / 2] = NAN;
  }

 private:
  int first_ = 0, calls_ = 0;
};

TEST(GradientChecks, ANonFiniteGradientStopsTheStepNamingStepAndTensor) {
  // Backward reaches the norms as model.norm, then per layer from the last: post_attention,
  // input; llama_gqa has 2 layers, so the 3rd and 4th RMSNorm backward are layer 1's
  // input_layernorm and layer 0's post_attention_layernorm, after two finite norm gradients: the
  // first of the two bad ones is named.
  for (const bool clip : {false, true}) {
    SCOPED_TRACE(clip ? "clip-norm (the norm pass finds it)" : "LOMO (the update pass finds it)");
    auto backend = std::make_unique<PoisonedNormGradient>();
    PoisonedNormGradient& be = *backend;
    test::TestRun run("llama_gqa", StorageDtype::F32, std::move(backend));
    SafetensorsFile ref(test::fixture_dir("llama_gqa") + "/reference.safetensors");
    const Batch batch = test::fixture_batch(ref);
    TrainOptions o;
    o.optimizer = OptimizerKind::Lomo;
    o.clip_grad_norm = clip ? 1.0f : 0.0f;
    Trainer t = run.trainer(o);
    EXPECT_NO_THROW(t.step(batch, 0.01, 1));
    be.arm(3);
    try {
      t.step(batch, 0.01, 2);
      ADD_FAILURE() << "a step with a NaN gradient passed";
    } catch (const Error& e) {
      const std::string want =
          clip ? "step 2: the gradient of model.layers.1.input_layernorm.weight contains inf or "
                 "NaN; no parameter was updated; training stopped"
               : "step 2: the gradient of model.layers.1.input_layernorm.weight contains inf or "
                 "NaN; training stopped (lower --lr, or use --clip-grad-norm)";
      EXPECT_EQ(std::string(e.what()), want);
    }
  }
}

}  // namespace
}  // namespace lomo
