// The KV-cache ops against the training ops they must agree with: attention over a cache
// (attention_cached) against causal attention over the whole sequence (attention_forward, itself
// checked by finite differences and the PyTorch reference), and RoPE at an offset
// (rope_forward_at) against the rows of a full-sequence rope_forward.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "nan_backend.h"
#include "ops/cpu/attention.h"
#include "ops/cpu/kv_attention.h"
#include "test_run.h"
#include "test_util.h"

namespace lomo {
namespace {

struct Shapes {
  int64_t T = 70, n_head = 4, n_kv = 2, hd = 8;  // T crosses one kKvRows block of queries
  int64_t qd() const { return n_head * hd; }
  int64_t kvd() const { return n_kv * hd; }
};

template <class F>
std::vector<F> random_vec(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<double> d(0.0, 1.0);
  std::vector<F> v(n);
  for (auto& x : v) x = static_cast<F>(d(g));
  return v;
}

// How the cached op is fed in each schedule: the whole prompt at once, one token at a time, and
// chunks of 5 (past > 0 with several queries).
enum class Feed { Prefill, OneByOne, Chunks };

// Runs the cached attention over q/k/v (T, ·) fed per `feed`, into out (T, qd), through `be`.
void cached_attention(Backend& be, const Shapes& s, Feed feed, const std::vector<float>& q,
                      const std::vector<float>& k, const std::vector<float>& v,
                      std::vector<float>& out) {
  const int64_t cap = s.T + 3;  // a cache larger than the sequence: rows past it never read
  std::vector<float> kc(cap * s.kvd(), NAN), vc(cap * s.kvd(), NAN);
  out.assign(s.T * s.qd(), NAN);
  const int64_t step = feed == Feed::Prefill ? s.T : feed == Feed::OneByOne ? 1 : 5;
  for (int64_t past = 0; past < s.T; past += step) {
    const int64_t n = std::min(step, s.T - past);
    std::copy(k.begin() + past * s.kvd(), k.begin() + (past + n) * s.kvd(),
              kc.begin() + past * s.kvd());
    std::copy(v.begin() + past * s.kvd(), v.begin() + (past + n) * s.kvd(),
              vc.begin() + past * s.kvd());
    const KvAttnDims dims{1, n, past, cap, s.n_head, s.n_kv, s.hd};
    std::vector<float> work(be.attention_cached_workspace_elems(dims));
    be.attention_cached(out.data() + past * s.qd(), work.data(), q.data() + past * s.qd(),
                        kc.data(), vc.data(), dims);
  }
}

class KvAttention : public ::testing::TestWithParam<test::TestBackend> {};

TEST_P(KvAttention, EqualsFullSequenceAttention) {
  const Shapes s;
  const auto q = random_vec<float>(s.T * s.qd(), 1), k = random_vec<float>(s.T * s.kvd(), 2),
             v = random_vec<float>(s.T * s.kvd(), 3);
  const auto be = test::make_test_backend(GetParam());
  const AttnDims full{1, s.T, s.n_head, s.n_kv, s.hd};
  std::vector<float> ref(s.T * s.qd()), stats(attention_stats_elems(full)),
      work(be->attention_workspace_elems(full));
  const std::vector<int32_t> lengths{static_cast<int32_t>(s.T)};
  be->attention_forward(ref.data(), stats.data(), work.data(), q.data(), k.data(), v.data(),
                        lengths.data(), full);
  for (Feed feed : {Feed::Prefill, Feed::OneByOne, Feed::Chunks}) {
    std::vector<float> out;
    cached_attention(*be, s, feed, q, k, v, out);
    // Both compute softmax(q·kᵀ/√hd)·v in fp32 with the same exp and fp64 sums; only the
    // products' blocking differs (rows of 64 against 64 + the cache prefix), a few ulp of
    // outputs of size ~1.
    EXPECT_LT(test::rel_inf_error(out.data(), ref.data(), out.size()), 1e-6)
        << "feed " << static_cast<int>(feed);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, KvAttention,
                         ::testing::Values(test::TestBackend::Cpu, test::TestBackend::NanFill),
                         [](const auto& info) { return test::test_backend_name(info.param); });

// In fp64 the two ops compute the same sums: agreement to 1e-13 shows the cached op is the same
// function (positions, causal mask, GQA grouping, two sequences in a batch) and not merely close.
TEST(KvAttention, Fp64TwoSequencesMatchFullAttention) {
  const Shapes s{.T = 9, .n_head = 6, .n_kv = 2, .hd = 4};
  const int64_t B = 2;
  const auto q = random_vec<double>(B * s.T * s.qd(), 4),
             k = random_vec<double>(B * s.T * s.kvd(), 5),
             v = random_vec<double>(B * s.T * s.kvd(), 6);
  const AttnDims full{B, s.T, s.n_head, s.n_kv, s.hd};
  std::vector<double> ref(B * s.T * s.qd()), stats(attention_stats_elems(full)),
      work(attention_work_elems(full, 64));
  const std::vector<int32_t> lengths{static_cast<int32_t>(s.T), static_cast<int32_t>(s.T)};
  attention_forward(ref.data(), stats.data(), work.data(), q.data(), k.data(), v.data(),
                    lengths.data(), full);
  // The cache of capacity T holds both sequences' keys; queries come one position at a time.
  std::vector<double> out(ref.size(), NAN), qi(B * s.qd()), oi(B * s.qd());
  for (int64_t t = 0; t < s.T; ++t) {
    for (int64_t b = 0; b < B; ++b) {
      std::copy_n(q.begin() + (b * s.T + t) * s.qd(), s.qd(), qi.begin() + b * s.qd());
    }
    const KvAttnDims dims{B, 1, t, s.T, s.n_head, s.n_kv, s.hd};
    std::vector<double> w(kv_attention_work_elems(dims, 64));
    kv_attention_forward(oi.data(), w.data(), qi.data(), k.data(), v.data(), dims);
    for (int64_t b = 0; b < B; ++b) {
      std::copy_n(oi.begin() + b * s.qd(), s.qd(), out.begin() + (b * s.T + t) * s.qd());
    }
  }
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-13) << "element " << i;
}

TEST(KvAttention, RopeAtOffsetEqualsFullSequenceRows) {
  const int64_t T = 11, H = 3, hd = 8, pos0 = 6, n = T - pos0;
  const RopeTable table = make_rope_table(RopeConfig{}, hd, 16);
  auto full = random_vec<float>(T * H * hd, 7);
  std::vector<float> tail(full.begin() + pos0 * H * hd, full.end());
  const auto be = test::make_test_backend(test::TestBackend::Cpu);
  be->rope_forward(full.data(), table, 1, T, H, hd);
  be->rope_forward_at(tail.data(), table, pos0, 1, n, H, hd);
  for (int64_t i = 0; i < n * H * hd; ++i) {
    ASSERT_EQ(tail[i], full[pos0 * H * hd + i]) << "element " << i;  // the same arithmetic
  }
}

}  // namespace
}  // namespace lomo
