// The communicators' collectives, run under mpirun by ctest (2 and 4 ranks, oversubscribed on CI's
// 2 cores); alone, as one rank. Every rank runs every test and makes the same collective calls in
// the same order before any assertion, so that a failure on one rank cannot leave another
// waiting. Sums are checked against fp64 sums of the same values, and identity across ranks by
// gathering a hash of each rank's result.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "dist/replicas.h"
#include "dist/world.h"
#include "model/config.h"
#include "model/params.h"
#include "ops/backend.h"

namespace lomo {

World* g_world = nullptr;  // set by main()

namespace {

Communicator& comm() { return g_world->host(); }

// Rank r's element i: values of mixed sign and magnitude whose fp32 sums round.
float value(int r, int64_t i) {
  return static_cast<float>(std::sin(0.37 * static_cast<double>(i) + 1.3 * r) *
                            std::pow(10.0, static_cast<double>((i + r) % 7) - 3));
}

uint64_t bits_hash(const std::vector<float>& v) {
  uint64_t h = 1469598103934665603ULL;
  for (float x : v) {
    uint32_t b;
    std::memcpy(&b, &x, 4);
    h = (h ^ b) * 1099511628211ULL;
  }
  return h;
}

// Whether every rank holds the same bits in v.
bool same_on_every_rank(const std::vector<float>& v) {
  const std::vector<uint64_t> all = comm().all_gather(bits_hash(v));
  for (uint64_t h : all) {
    if (h != all[0]) return false;
  }
  return true;
}

TEST(Collectives, AllReduceSumIsTheSumAndIdenticalOnEveryRank) {
  const int R = comm().size();
  // Lengths below, at and off a multiple of the ranks, and one of several MiB.
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{3}, int64_t{7}, int64_t{1000}, int64_t{1} << 21}) {
    // Every rank's inputs, made by the same loop on every rank (the compiler may vectorise a loop
    // of sin calls, so values are computed once and both sent and checked from here).
    std::vector<std::vector<float>> inputs(static_cast<size_t>(R));
    for (int r = 0; r < R; ++r) {
      inputs[static_cast<size_t>(r)].resize(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) inputs[static_cast<size_t>(r)][static_cast<size_t>(i)] = value(r, i);
    }
    std::vector<float> v = inputs[static_cast<size_t>(comm().rank())];
    comm().all_reduce_sum(v.data(), n);
    const bool same = same_on_every_rank(v);
    EXPECT_TRUE(same) << "n = " << n;
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      double exact = 0, scale = 0;
      for (int r = 0; r < R; ++r) {
        const double x = inputs[static_cast<size_t>(r)][static_cast<size_t>(i)];
        exact += x;
        scale += std::abs(x);
      }
      worst = std::max(worst, std::abs(v[static_cast<size_t>(i)] - exact) / (scale + 1e-30));
    }
    // (R − 1) fp32 additions, each within half an ulp: |error| ≤ (R − 1)·2⁻²⁴·Σ|x| (to first order).
    EXPECT_LE(worst, (R - 1) * 0x1p-24 * 1.0001) << "n = " << n;
  }
}

TEST(Collectives, ReduceScatterAllGatherBroadcast) {
  const int R = comm().size(), me = comm().rank();
  const int64_t n = 5;
  std::vector<float> in(static_cast<size_t>(R * n)), out(static_cast<size_t>(n));
  for (int64_t i = 0; i < R * n; ++i) in[static_cast<size_t>(i)] = static_cast<float>(me + 1) * i;
  comm().reduce_scatter_sum(in.data(), out.data(), n);
  // Σ_r (r + 1)·i over ranks, for my piece's indices i = me·n + j: exact in fp32 here.
  const float ranks_sum = static_cast<float>(R * (R + 1) / 2);
  for (int64_t j = 0; j < n; ++j) {
    EXPECT_EQ(out[static_cast<size_t>(j)], ranks_sum * static_cast<float>(me * n + j)) << j;
  }
  std::vector<float> mine(3, static_cast<float>(me) + 0.5f), all(static_cast<size_t>(3 * R));
  comm().all_gather(mine.data(), all.data(), 3);
  for (int r = 0; r < R; ++r) {
    for (int k = 0; k < 3; ++k) EXPECT_EQ(all[static_cast<size_t>(3 * r + k)], r + 0.5f);
  }
  std::vector<float> b(4, static_cast<float>(me));
  comm().broadcast(b.data(), 4, R - 1);
  for (float x : b) EXPECT_EQ(x, static_cast<float>(R - 1));
}

TEST(Collectives, ScalarsAndBarrier) {
  const int R = comm().size(), me = comm().rank();
  EXPECT_EQ(comm().all_reduce_sum(static_cast<double>(me + 1)), R * (R + 1) / 2.0);
  EXPECT_EQ(comm().all_reduce_max(static_cast<double>(me == 0 ? 7 : -1)), 7.0);
  const std::vector<uint64_t> all = comm().all_gather(static_cast<uint64_t>(100 + me));
  ASSERT_EQ(all.size(), static_cast<size_t>(R));
  for (int r = 0; r < R; ++r) EXPECT_EQ(all[static_cast<size_t>(r)], 100u + r);
  comm().barrier();
}

TEST(Replicas, EqualParametersPassAndOneChangedElementIsNamed) {
  ModelConfig c;
  c.vocab = 16;
  c.d_model = 8;
  c.n_layer = 1;
  c.n_head = 2;
  c.n_kv = 2;
  c.head_dim = 4;
  c.d_ff = 12;
  MemoryTracker tracker;
  ModelParams params(c, tracker);
  for (Param& p : params.all()) {
    for (int64_t i = 0; i < p.numel(); ++i) p.f()[i] = static_cast<float>(i % 5) * 0.25f;
  }
  const std::unique_ptr<Backend> backend = make_backend();
  EXPECT_NO_THROW(check_replicas(params, *backend, comm(), "in the test"));
  if (comm().size() == 1) return;
  // The last rank's copy differs in one element of one tensor.
  if (comm().rank() == comm().size() - 1) params.all().back().f()[0] += 1e-7f;
  std::string message;
  try {
    check_replicas(params, *backend, comm(), "in the test");
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("rank(s) " + std::to_string(comm().size() - 1)), std::string::npos)
      << message;
}

}  // namespace
}  // namespace lomo

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  std::unique_ptr<lomo::World> world;
  try {
    world = lomo::World::start();
  } catch (const lomo::Error& e) {
    std::fprintf(stderr, "lomo_dist_tests: %s\n", e.what());
    return 1;
  }
  lomo::g_world = world.get();
  const int rc = RUN_ALL_TESTS();
  // Any rank's failure fails every rank's status (mpirun reports the first non-zero).
  const double failed = world->host().all_reduce_max(rc != 0 ? 1.0 : 0.0);
  return failed > 0 ? 1 : 0;
}
