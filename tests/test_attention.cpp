// The fused CPU attention (ops/cpu/attention.cpp) in fp32 against a plain fp64 attention written
// here, on shapes that cross its 64-position query and key blocks with odd lengths; its results
// bit for bit across thread counts; and every output written when out, stats, the gradients and
// the scratch start as NaN. (Finite differences of the fp64 instantiation: test_ops_fd.cpp.)
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu/attention.h"

namespace lomo {
namespace {

using Vec = std::vector<double>;
using VecF = std::vector<float>;

Vec randn(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  Vec v(n);
  for (auto& x : v) x = dist(g);
  return v;
}

VecF to_float(const Vec& v) { return VecF(v.begin(), v.end()); }

struct Inputs {
  AttnDims d;
  std::vector<int32_t> lengths;
  Vec q, k, v, dout;  // q, dout (B, T, n_head, hd); k, v (B, T, n_kv, hd)

  Inputs(const AttnDims& dims, std::vector<int32_t> lens) : d(dims), lengths(std::move(lens)) {
    const int64_t nq = d.B * d.T * d.n_head * d.head_dim, nk = d.B * d.T * d.n_kv * d.head_dim;
    q = randn(nq, 1);
    k = randn(nk, 2);
    v = randn(nk, 3);
    dout = randn(nq, 4);
    // Padding rows carry no gradient in the model: their dout is zero.
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t t = lengths[b]; t < d.T; ++t)
        std::fill_n(dout.begin() + (b * d.T + t) * d.n_head * d.head_dim, d.n_head * d.head_dim,
                    0.0);
  }
};

struct Grads {
  Vec out, dq, dk, dv;
};

// Attention as written in the textbook, one (b, head, row) at a time, in fp64.
Grads naive_attention(const Inputs& in) {
  const AttnDims& d = in.d;
  const int64_t hd = d.head_dim, group = d.n_head / d.n_kv;
  const int64_t ldq = d.n_head * hd, ldk = d.n_kv * hd;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  Grads g{Vec(in.q.size(), 0.0), Vec(in.q.size(), 0.0), Vec(in.k.size(), 0.0),
          Vec(in.k.size(), 0.0)};
  for (int64_t b = 0; b < d.B; ++b) {
    for (int64_t h = 0; h < d.n_head; ++h) {
      const int64_t kvh = h / group;
      auto qr = [&](int64_t t) { return (b * d.T + t) * ldq + h * hd; };
      auto kr = [&](int64_t t) { return (b * d.T + t) * ldk + kvh * hd; };
      for (int64_t i = 0; i < in.lengths[b]; ++i) {
        Vec p(i + 1), dp(i + 1);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) {
          double s = 0;
          for (int64_t c = 0; c < hd; ++c) s += in.q[qr(i) + c] * in.k[kr(j) + c];
          p[j] = s * scale;
          mx = std::max(mx, p[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j <= i; ++j) sum += (p[j] = std::exp(p[j] - mx));
        double D = 0;
        for (int64_t j = 0; j <= i; ++j) {
          p[j] /= sum;
          double s = 0;
          for (int64_t c = 0; c < hd; ++c) {
            g.out[qr(i) + c] += p[j] * in.v[kr(j) + c];
            g.dv[kr(j) + c] += p[j] * in.dout[qr(i) + c];
            s += in.dout[qr(i) + c] * in.v[kr(j) + c];
          }
          dp[j] = s;
          D += p[j] * s;
        }
        for (int64_t j = 0; j <= i; ++j) {
          const double ds = p[j] * (dp[j] - D) * scale;
          for (int64_t c = 0; c < hd; ++c) {
            g.dq[qr(i) + c] += ds * in.k[kr(j) + c];
            g.dk[kr(j) + c] += ds * in.q[qr(i) + c];
          }
        }
      }
    }
  }
  return g;
}

struct FusedRun {
  VecF out, stats, dq, dk, dv;
};

// The fused fp32 kernel with out, stats, the gradients and the scratch all NaN beforehand.
FusedRun fused_attention(const Inputs& in) {
  const AttnDims& d = in.d;
  const VecF q = to_float(in.q), k = to_float(in.k), v = to_float(in.v), dout = to_float(in.dout);
  FusedRun r{VecF(q.size(), NAN), VecF(attention_stats_elems(d), NAN), VecF(q.size(), NAN),
             VecF(k.size(), NAN), VecF(k.size(), NAN)};
  VecF work(attention_work_elems(d, omp_get_max_threads()), NAN);
  attention_forward(r.out.data(), r.stats.data(), work.data(), q.data(), k.data(), v.data(),
                    in.lengths.data(), d);
  std::fill(work.begin(), work.end(), NAN);
  attention_backward(r.dq.data(), r.dk.data(), r.dv.data(), work.data(), dout.data(),
                     r.stats.data(), q.data(), k.data(), v.data(), in.lengths.data(), d);
  return r;
}

// |got − want| ≤ tol · max|want| element by element; padding rows (and keys) must be exactly 0.
void expect_close(const char* what, const VecF& got, const Vec& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  double scale = 1e-30;
  for (double w : want) scale = std::max(scale, std::abs(w));
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << what << " element " << i;
    if (want[i] == 0.0) {
      ASSERT_EQ(got[i], 0.0f) << what << " element " << i << " (padding)";
    }
    worst = std::max(worst, std::abs(got[i] - want[i]) / scale);
  }
  EXPECT_LE(worst, tol) << what;
  char text[32];
  std::snprintf(text, sizeof text, "%.2e", worst);
  ::testing::Test::RecordProperty(std::string("worst_") + what, text);
}

// fp32 products of 64-long dot products and sums over up to 150 keys: relative errors of a few
// 1e-7 of the largest entry (measured: at most 5.2e-7); 1e-5 leaves a margin of twenty and still
// catches any wrong term (a missing or extra key is an O(1e-2) error).
constexpr double kTol = 1e-5;

void check_against_naive(const AttnDims& d, const std::vector<int32_t>& lengths) {
  const Inputs in(d, lengths);
  const Grads want = naive_attention(in);
  const FusedRun got = fused_attention(in);
  expect_close("out", got.out, want.out, kTol);
  expect_close("dq", got.dq, want.dq, kTol);
  expect_close("dk", got.dk, want.dk, kTol);
  expect_close("dv", got.dv, want.dv, kTol);
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h = 0; h < d.n_head; ++h)
      for (int64_t t = lengths[b]; t < d.T; ++t)
        for (int64_t c = 0; c < 2; ++c)
          EXPECT_EQ(got.stats[((b * d.n_head + h) * d.T + t) * 2 + c], 0.0f) << "padding stats";
}

TEST(Attention, FusedMatchesNaiveGqa93HeadDim64) {
  check_against_naive({3, 150, 9, 3, 64}, {150, 71, 1});  // B, T, n_head, n_kv, head_dim
}

TEST(Attention, FusedMatchesNaiveGqa42HeadDim64) {
  check_against_naive({3, 130, 4, 2, 64}, {130, 65, 64});
}

TEST(Attention, FusedMatchesNaiveOddHeadDims) {
  check_against_naive({2, 130, 4, 2, 2}, {130, 71});
  check_against_naive({2, 150, 9, 3, 3}, {1, 150});
  check_against_naive({1, 129, 2, 1, 80}, {129});   // a masked last vector of 16
  check_against_naive({1, 70, 6, 6, 24}, {70});     // no grouping
}

// Resume tests compare runs bit for bit: the results may not depend on the number of threads.
TEST(Attention, FusedIsBitIdenticalAcrossThreadCounts) {
  const Inputs in({2, 200, 9, 3, 64}, {200, 137});
  const int keep = omp_get_max_threads();
  omp_set_num_threads(1);
  const FusedRun one = fused_attention(in);
  for (int threads : {2, 3}) {
    omp_set_num_threads(threads);
    const FusedRun many = fused_attention(in);
    auto same = [](const VecF& a, const VecF& b) {
      return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
    };
    const std::string at = std::to_string(threads) + " threads";
    EXPECT_TRUE(same(one.out, many.out)) << "out, " << at;
    EXPECT_TRUE(same(one.stats, many.stats)) << "stats, " << at;
    EXPECT_TRUE(same(one.dq, many.dq)) << "dq, " << at;
    EXPECT_TRUE(same(one.dk, many.dk)) << "dk, " << at;
    EXPECT_TRUE(same(one.dv, many.dv)) << "dv, " << at;
  }
  omp_set_num_threads(keep);
}

}  // namespace
}  // namespace lomo
