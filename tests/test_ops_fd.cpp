// Every op's backward against central finite differences in fp64 on tiny shapes (design §7.2).
// Each test reduces the op's outputs to a scalar f = Σ R ⊙ out with a fixed random R, runs the
// backward with dout = R, and compares each input's analytic gradient with
// (f(x + h) − f(x − h)) / 2h. In fp64 with h = 1e-5 the truncation error is O(h²) ≈ 1e-10 and
// the cancellation error O(u/h) ≈ 1e-11, so 1e-7 relative is a tight yet safe tolerance.
#include <gtest/gtest.h>
#include <omp.h>

#include <functional>
#include <vector>

#include "core/rng.h"
#include "model/linear.h"
#include "ops/backend.h"
#include "ops/cpu/attention.h"
#include "ops/cpu/cross_entropy.h"
#include "ops/cpu/embedding.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/rmsnorm.h"
#include "ops/cpu/rope.h"
#include "ops/cpu/swiglu.h"

namespace lomo {
namespace {

using Vec = std::vector<double>;

Vec randn(size_t n, uint64_t stream, double scale = 1.0) {
  Vec v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * counter_normal(42, stream, i);
  return v;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Checks `analytic` against finite differences of f over every element of x.
void expect_fd(const char* what, Vec& x, const Vec& analytic, const std::function<double()>& f,
               double tol = 1e-7) {
  ASSERT_EQ(x.size(), analytic.size());
  const double h = 1e-5;
  double scale = 1e-12;
  for (double a : analytic) scale = std::max(scale, std::abs(a));
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double fp = f();
    x[i] = keep - h;
    const double fm = f();
    x[i] = keep;
    const double numeric = (fp - fm) / (2 * h);
    ASSERT_NEAR(analytic[i], numeric, tol * scale) << what << " element " << i;
  }
}

TEST(FiniteDifferences, Embedding) {
  const int64_t V = 7, d = 5, N = 6;
  const std::vector<int32_t> ids = {3, 0, 3, -1, 6, 2};  // a repeated id and a padding slot
  Vec table = randn(V * d, 1), R = randn(N * d, 2), out(N * d);
  auto f = [&] {
    embedding_forward(out.data(), ids.data(), table.data(), N, d);
    return dot(R, out);
  };
  Vec dtable(V * d, 0.0);
  embedding_backward(dtable.data(), R.data(), ids.data(), N, d);
  expect_fd("dtable", table, dtable, f);
}

TEST(FiniteDifferences, RmsNorm) {
  const int64_t N = 4, d = 6;
  Vec x = randn(N * d, 1), w = randn(d, 2), R = randn(N * d, 3), y(N * d), rstd(N);
  auto f = [&] {
    rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), N, d, 1e-5);
    return dot(R, y);
  };
  f();
  Vec dx(N * d, 0.0), dw(d);
  rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), rstd.data(), w.data(), N, d);
  expect_fd("dx", x, dx, f);
  expect_fd("dw", w, dw, f);
}

TEST(FiniteDifferences, RmsNormAccumulatesIntoDx) {
  const int64_t N = 2, d = 3;
  Vec x = randn(N * d, 1), w = randn(d, 2), R = randn(N * d, 3), y(N * d), rstd(N);
  rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), N, d, 1e-5);
  Vec dx0(N * d, 0.0), dx1(N * d, 1.0), dw(d);
  rmsnorm_backward(dx0.data(), dw.data(), R.data(), x.data(), rstd.data(), w.data(), N, d);
  rmsnorm_backward(dx1.data(), dw.data(), R.data(), x.data(), rstd.data(), w.data(), N, d);
  for (int64_t i = 0; i < N * d; ++i) EXPECT_DOUBLE_EQ(dx1[i], dx0[i] + 1.0);
}

TEST(FiniteDifferences, Rope) {
  const int64_t B = 2, T = 5, H = 3, hd = 8;
  RopeConfig rc;
  rc.theta = 100.0;
  rc.scaling = RopeScaling::Llama3;
  rc.factor = 4.0;
  rc.original_max_position = 4;
  const RopeTable table = make_rope_table(rc, hd, T);
  Vec x = randn(B * T * H * hd, 1), R = randn(x.size(), 2);
  auto f = [&] {
    Vec y = x;
    rope_forward(y.data(), table, B, T, H, hd);
    return dot(R, y);
  };
  Vec dx = R;
  rope_backward(dx.data(), table, B, T, H, hd);
  expect_fd("dx", x, dx, f);
}

void check_attention(const AttnDims& d, const std::vector<int32_t>& lengths) {
  const int64_t nq = d.B * d.T * d.n_head * d.head_dim, nk = d.B * d.T * d.n_kv * d.head_dim;
  Vec q = randn(nq, 1), k = randn(nk, 2), v = randn(nk, 3), R = randn(nq, 4);
  // Padding rows carry no gradient (their dout is zero in the model); zero R there too.
  for (int64_t b = 0; b < d.B; ++b) {
    for (int64_t t = lengths[b]; t < d.T; ++t) {
      for (int64_t j = 0; j < d.n_head * d.head_dim; ++j)
        R[((b * d.T) + t) * d.n_head * d.head_dim + j] = 0;
    }
  }
  Vec out(nq), stats(attention_stats_elems(d)), work(attention_work_elems(d, omp_get_max_threads()));
  auto f = [&] {
    attention_forward(out.data(), stats.data(), work.data(), q.data(), k.data(), v.data(),
                      lengths.data(), d);
    return dot(R, out);
  };
  f();
  Vec dq(nq), dk(nk), dv(nk);
  attention_backward(dq.data(), dk.data(), dv.data(), work.data(), R.data(), stats.data(), q.data(),
                     k.data(), v.data(), lengths.data(), d);
  expect_fd("dq", q, dq, f);
  expect_fd("dk", k, dk, f);
  expect_fd("dv", v, dv, f);
}

TEST(FiniteDifferences, AttentionWithGqaAndPadding) {
  check_attention({2, 5, 4, 2, 3}, {5, 3});  // B, T, n_head, n_kv, head_dim
}

// Longer than the 64-row blocks the causal products are cut into: three blocks, the last partial,
// and a padded sequence ending inside a block.
TEST(FiniteDifferences, AttentionAcrossRowBlocks) {
  check_attention({2, 150, 2, 1, 2}, {150, 71});
}

// The fused kernel's query and key blocks (64 positions; a query block holds all heads of a kv
// group): grouped heads 4:2 and 9:3, sequences ending inside a block, one of a single token (the
// fp32 kernel against a naive attention on larger shapes: test_attention.cpp).
TEST(FiniteDifferences, AttentionAcrossBlocksWithGqa42) {
  check_attention({2, 130, 4, 2, 2}, {130, 1});
}

TEST(FiniteDifferences, AttentionAcrossBlocksWithGqa93) {
  check_attention({1, 80, 9, 3, 2}, {71});
}

TEST(FiniteDifferences, SwiGlu) {
  const int64_t n = 17;
  Vec g = randn(n, 1, 2.0), u = randn(n, 2), R = randn(n, 3), m(n);
  auto f = [&] {
    swiglu_forward(m.data(), g.data(), u.data(), n);
    return dot(R, m);
  };
  Vec dg(n), du(n);
  swiglu_backward(dg.data(), du.data(), R.data(), g.data(), u.data(), n);
  expect_fd("dg", g, dg, f);
  expect_fd("du", u, du, f);
}

TEST(FiniteDifferences, CrossEntropy) {
  const int64_t N = 4, V = 9;
  const std::vector<int32_t> targets = {2, -1, 8, 0};
  Vec logits = randn(N * V, 1, 3.0), nll(N);
  const double scale = 1.0 / 3.0;  // mean over the 3 loss rows
  auto f = [&] {
    cross_entropy_forward(nll.data(), logits.data(), targets.data(), N, V);
    double s = 0;
    for (double x : nll) s += x;
    return s * scale;
  };
  Vec dlogits(N * V);
  cross_entropy_backward(dlogits.data(), logits.data(), targets.data(), N, V, scale);
  expect_fd("dlogits", logits, dlogits, f);
}

// linear_backward works on fp32 parameters (it is where the LOMO order rule lives), so it is
// checked against finite differences of the same layer evaluated in fp64: tolerance 1e-5 covers
// fp32 rounding of dot products of length ≤ 7.
class CaptureSink : public GradSink {
 public:
  explicit CaptureSink(std::vector<std::vector<float>>* out) : out_(out) {}
  float* gradient_buffer(const Param& p) override {
    bufs_.resize(std::max<size_t>(bufs_.size(), p.id + 1));
    bufs_[p.id].resize(p.numel());
    return bufs_[p.id].data();
  }
  void consume(Param& p, float* grad) override {
    out_->resize(std::max<size_t>(out_->size(), p.id + 1));
    (*out_)[p.id].assign(grad, grad + p.numel());
  }

 private:
  std::vector<std::vector<float>>* out_;
  std::vector<std::vector<float>> bufs_;
};

TEST(FiniteDifferences, LinearWithBias) {
  const int64_t N = 5, in = 7, out = 4;
  MemoryTracker tracker;
  Param W, b;
  W.id = 0, b.id = 1;
  b.role = ParamRole::Bias;
  W.shape = {out, in};
  b.shape = {out};
  W.data = Buffer(tracker, MemCategory::Parameters, out * in * 4);
  b.data = Buffer(tracker, MemCategory::Parameters, out * 4);
  Vec x = randn(N * in, 1), w = randn(out * in, 2), bias = randn(out, 3), R = randn(N * out, 4);
  for (int64_t i = 0; i < out * in; ++i) W.f()[i] = static_cast<float>(w[i]);
  for (int64_t i = 0; i < out; ++i) b.f()[i] = static_cast<float>(bias[i]);
  for (auto& v : w) v = static_cast<float>(v);  // the fp64 evaluation uses the fp32 values
  for (auto& v : bias) v = static_cast<float>(v);
  for (auto& v : x) v = static_cast<float>(v);
  for (auto& v : R) v = static_cast<float>(v);
  auto f = [&] {
    Vec y(N * out);
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t o = 0; o < out; ++o) y[n * out + o] = bias[o];
    }
    gemm(Trans::No, Trans::Yes, N, out, in, 1.0, x.data(), in, w.data(), in, 1.0, y.data(), out);
    return dot(R, y);
  };
  std::vector<float> xf(x.begin(), x.end()), Rf(R.begin(), R.end()), dxf(N * in);
  std::vector<std::vector<float>> grads;
  CaptureSink sink(&grads);
  const auto backend = make_backend();
  WeightCache wc(tracker, *backend, 0);
  linear_backward(dxf.data(), Rf.data(), xf.data(), W, &b, N, DxMode::Overwrite, sink, wc);
  ASSERT_EQ(grads.size(), 2u);
  expect_fd("dX", x, Vec(dxf.begin(), dxf.end()), f, 1e-5);
  expect_fd("dW", w, Vec(grads[0].begin(), grads[0].end()), f, 1e-5);
  expect_fd("db", bias, Vec(grads[1].begin(), grads[1].end()), f, 1e-5);
}

}  // namespace
}  // namespace lomo
