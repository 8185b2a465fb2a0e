// The tiled LM head + cross-entropy (two passes with an online logsumexp, or one pass over
// row tiles of the whole vocabulary; no (N, V) logits) equals the plain computation — full
// logits by one GEMM, then the cross-entropy ops, which the finite difference tests check — for
// loss, dxn and dW, whatever the tile shape; and a 16-bit head, converted block by block, equals
// the fp32 head holding the same values.
#include <gtest/gtest.h>

#include "core/half.h"
#include "core/rng.h"
#include "model/params.h"
#include "ops/cpu/lm_head.h"
#include "ops/cpu/cross_entropy.h"
#include "ops/cpu/gemm.h"
#include "test_util.h"

namespace lomo {
namespace {

constexpr int64_t N = 13, d = 24, V = 37;
constexpr float kScale = 0.1f;

struct Result {
  double sum = 0;
  std::vector<float> nll, dxn, dW;
};

Param make_head(MemoryTracker& tracker, StorageDtype dtype) {
  Param W;
  W.shape = {V, d};
  W.dtype = dtype;
  W.data = Buffer(tracker, MemCategory::Parameters, V * d * (dtype == StorageDtype::F32 ? 4 : 2));
  std::vector<float> w(V * d);
  for (int64_t i = 0; i < V * d; ++i) w[i] = static_cast<float>(0.3 * counter_normal(5, 1, i));
  W.from_f32(w.data());
  return W;
}

struct Inputs {
  std::vector<float> xn = std::vector<float>(N * d);
  std::vector<int32_t> targets = std::vector<int32_t>(N);
  Inputs() {
    for (int64_t i = 0; i < N * d; ++i) xn[i] = static_cast<float>(counter_normal(5, 2, i));
    for (int64_t i = 0; i < N; ++i) targets[i] = i % 4 == 3 ? -1 : static_cast<int32_t>((i * 7) % V);
  }
};

Result tiled(Param& W, const Inputs& in, LmHeadTiles tiles) {
  Result r;
  std::vector<float> tile(tiles.tile_elems(V)), w_block(tiles.cols * d);
  std::vector<double> stats(2 * N);
  r.nll.assign(N, -1);
  r.dxn.assign(N * d, -1);
  r.dW.assign(V * d, -1);
  LmHeadIo io;
  io.xn = in.xn.data();
  io.targets = in.targets.data();
  io.N = N;
  io.nll = r.nll.data();
  io.tiles = tiles;
  io.tile = tile.data();
  io.w_block = w_block.data();
  io.row_stats = stats.data();
  io.dxn = r.dxn.data();
  io.dW = r.dW.data();
  io.grad_scale = kScale;
  r.sum = lm_head_loss(W.view(), io);
  return r;
}

Result plain(const Param& W, const Inputs& in) {
  Result r;
  std::vector<float> w(V * d), logits(N * V);
  W.to_f32(w.data());
  gemm(Trans::No, Trans::Yes, N, V, d, 1.0f, in.xn.data(), d, w.data(), d, 0.0f, logits.data(), V);
  r.nll.resize(N);
  cross_entropy_forward(r.nll.data(), logits.data(), in.targets.data(), N, V);
  for (float x : r.nll) r.sum += x;
  cross_entropy_backward(logits.data(), logits.data(), in.targets.data(), N, V, kScale);
  r.dxn.resize(N * d);
  r.dW.resize(V * d);
  gemm(Trans::No, Trans::No, N, d, V, 1.0f, logits.data(), V, w.data(), d, 0.0f, r.dxn.data(), d);
  gemm(Trans::Yes, Trans::No, V, d, N, 1.0f, logits.data(), V, in.xn.data(), d, 0.0f, r.dW.data(),
       d);
  return r;
}

TEST(LmHead, TiledEqualsPlain) {
  MemoryTracker tracker;
  Param W = make_head(tracker, StorageDtype::F32);
  const Inputs in;
  const Result ref = plain(W, in);
  for (LmHeadTiles t :
       {LmHeadTiles{N, V}, LmHeadTiles{1, 1}, LmHeadTiles{3, 5}, LmHeadTiles{5, 16},
        LmHeadTiles{12, 36}, lm_head_tiles(V, N), LmHeadTiles{N, V, true}, LmHeadTiles{1, 1, true},
        LmHeadTiles{5, 16, true}, LmHeadTiles{12, 36, true}, lm_head_tiles(V, N, true)}) {
    const Result r = tiled(W, in, t);
    SCOPED_TRACE(std::to_string(t.rows) + "x" + std::to_string(t.cols) +
                 (t.one_pass ? " one pass" : " two passes"));
    EXPECT_NEAR(r.sum, ref.sum, 1e-6 * ref.sum);
    // Different GEMM shapes block differently and the logsumexp is accumulated block by block:
    // fp32 rounding only.
    EXPECT_LE(test::rel_inf_error(r.nll.data(), ref.nll.data(), N), 1e-6);
    EXPECT_LE(test::rel_inf_error(r.dxn.data(), ref.dxn.data(), N * d), 1e-6);
    EXPECT_LE(test::rel_inf_error(r.dW.data(), ref.dW.data(), V * d), 1e-6);
    for (int64_t i = 0; i < N; ++i) {
      if (in.targets[i] < 0) {
        EXPECT_EQ(r.nll[i], 0.0f);
      }
    }
  }
}

TEST(LmHead, SixteenBitHeadEqualsItsFp32Values) {
  MemoryTracker tracker;
  const Inputs in;
  for (StorageDtype dt : {StorageDtype::BF16, StorageDtype::F16}) {
    Param W16 = make_head(tracker, dt);
    Param W32 = make_head(tracker, StorageDtype::F32);
    W16.to_f32(W32.f());  // the same values, exactly
    const LmHeadTiles t{5, 16};
    const Result a = tiled(W16, in, t), b = tiled(W32, in, t);
    EXPECT_EQ(a.sum, b.sum);
    EXPECT_EQ(a.nll, b.nll);
    EXPECT_EQ(a.dxn, b.dxn);
    EXPECT_EQ(a.dW, b.dW);
    // One pass: the 16-bit head's products go block by block, the fp32 head's over all of W at
    // once (different GEMM shapes), so fp32 rounding apart.
    const LmHeadTiles t1{5, 16, true};
    const Result c = tiled(W16, in, t1), e = tiled(W32, in, t1);
    EXPECT_NEAR(c.sum, e.sum, 1e-6 * e.sum);
    EXPECT_LE(test::rel_inf_error(c.nll.data(), e.nll.data(), N), 1e-6);
    EXPECT_LE(test::rel_inf_error(c.dxn.data(), e.dxn.data(), N * d), 1e-6);
    EXPECT_LE(test::rel_inf_error(c.dW.data(), e.dW.data(), V * d), 1e-6);
  }
}

}  // namespace
}  // namespace lomo
