// The chunked LM head + cross-entropy equals the unchunked computation (one chunk of every
// row, i.e. the plain logits path) for loss, dxn and dW, whatever the chunk size.
#include <gtest/gtest.h>

#include "core/rng.h"
#include "model/lm_head.h"
#include "test_util.h"

namespace lomo {
namespace {

TEST(LmHead, ChunkedEqualsPlain) {
  const int64_t N = 13, d = 24, V = 37;
  MemoryTracker tracker;
  Param W;
  W.shape = {V, d};
  W.data = Buffer(tracker, MemCategory::Parameters, V * d * 4);
  for (int64_t i = 0; i < V * d; ++i) W.f()[i] = static_cast<float>(0.3 * counter_normal(5, 1, i));
  std::vector<float> xn(N * d);
  for (int64_t i = 0; i < N * d; ++i) xn[i] = static_cast<float>(counter_normal(5, 2, i));
  std::vector<int32_t> targets(N);
  for (int64_t i = 0; i < N; ++i) targets[i] = i % 4 == 3 ? -1 : static_cast<int32_t>((i * 7) % V);
  auto run = [&](int64_t chunk, std::vector<float>& nll, std::vector<float>& dxn,
                 std::vector<float>& dW) {
    std::vector<float> scratch(chunk * V);
    nll.assign(N, 0);
    dxn.assign(N * d, 0);
    dW.assign(V * d, 0);
    LmHeadIo io;
    io.xn = xn.data();
    io.targets = targets.data();
    io.N = N;
    io.nll = nll.data();
    io.chunk = scratch.data();
    io.chunk_rows = chunk;
    io.dxn = dxn.data();
    io.dW = dW.data();
    io.grad_scale = 0.1f;
    WeightCache wc(tracker, 0);
    return lm_head_cross_entropy(W, io, wc);
  };
  std::vector<float> n0, x0, w0;
  const double plain = run(N, n0, x0, w0);
  for (int64_t chunk : {1, 3, 5, 12}) {
    std::vector<float> n1, x1, w1;
    const double chunked = run(chunk, n1, x1, w1);
    EXPECT_NEAR(chunked, plain, 1e-6 * plain) << chunk;
    // The GEMM library may block a 1-row product differently from a 13-row one, so even
    // row-wise results differ in the last bits: fp32 rounding only.
    EXPECT_LE(test::rel_inf_error(n1.data(), n0.data(), n0.size()), 1e-6) << chunk;
    EXPECT_LE(test::rel_inf_error(x1.data(), x0.data(), x0.size()), 1e-6) << chunk;
    EXPECT_LE(test::rel_inf_error(w1.data(), w0.data(), w0.size()), 1e-6) << chunk;
  }
}

}  // namespace
}  // namespace lomo
