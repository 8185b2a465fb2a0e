// The tiled LM head + cross-entropy (two passes with an online logsumexp, or one pass over
// row tiles of the whole vocabulary; no (N, V) logits) equals the plain computation — full
// logits by one GEMM, then the cross-entropy ops, which the finite difference tests check — for
// loss, dxn and dW, whatever the tile shape; and a 16-bit head, converted block by block, equals
// the fp32 head holding the same values.
#include <gtest/gtest.h>

#include <cmath>

#include "core/half.h"
#include "core/rng.h"
#include "model/params.h"
#include "ops/backend.h"
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

// LOMO's zero-buffer update inside the head's second pass (ops/lm_head.h): W ends as
// keep·W − step·dW with dW the plain computation's, dxn is still the plain one (every read of a
// block precedes its update), for every vocabulary block width, fp32 and bf16 (rounded to
// nearest once: within half an ulp of the exact value, plus fp32 rounding); a bf16 table's held
// rows are the fp32 values the stored ones round from; a non-finite loss leaves W untouched.
TEST(LmHead, ZeroBufferUpdateEqualsTheStepOnThePlainGradient) {
  MemoryTracker tracker;
  const Inputs in;
  const float keep = 0.97f, step = 0.5f;
  const int32_t held_ids[] = {0, 7, 20, 36};  // ascending; blocks of 5 and 16 split them
  for (StorageDtype dt : {StorageDtype::F32, StorageDtype::BF16}) {
    for (LmHeadTiles t : {LmHeadTiles{N, 5}, LmHeadTiles{N, 16}, LmHeadTiles{N, V},
                          lm_head_tiles(V, N, false, true)}) {
      SCOPED_TRACE(std::string(dt == StorageDtype::F32 ? "fp32" : "bf16") + " head, blocks of " +
                   std::to_string(t.cols));
      Param W = make_head(tracker, dt);
      std::vector<float> w0(V * d);
      W.to_f32(w0.data());
      const Result ref = plain(W, in);
      std::vector<float> tile(t.tile_elems(V)), w_block(t.cols * d), nll(N), dxn(N * d);
      std::vector<float> held_values(4 * d, -1);
      std::vector<double> stats(2 * N);
      SgdStep u;
      u.keep = keep;
      u.step = step;
      u.rounding.rounding = Rounding::Nearest;
      LmHeadIo io;
      io.xn = in.xn.data();
      io.targets = in.targets.data();
      io.N = N;
      io.nll = nll.data();
      io.tiles = t;
      io.tile = tile.data();
      io.w_block = w_block.data();
      io.row_stats = stats.data();
      io.dxn = dxn.data();
      io.grad_scale = kScale;
      io.update = &u;
      if (dt != StorageDtype::F32) io.held = {held_ids, 4, held_values.data()};
      const double sum = lm_head_loss(W.view(), io);
      EXPECT_NEAR(sum, ref.sum, 1e-6 * ref.sum);
      EXPECT_LE(test::rel_inf_error(dxn.data(), ref.dxn.data(), N * d), 1e-6);
      std::vector<float> w1(V * d);
      W.to_f32(w1.data());
      for (int64_t i = 0; i < V * d; ++i) {
        const double exact = static_cast<double>(keep) * w0[i] - static_cast<double>(step) * ref.dW[i];
        const double ulp = dt == StorageDtype::F32
                               ? 0
                               : std::ldexp(1.0, std::ilogb(static_cast<float>(exact)) - 7);
        ASSERT_LE(std::fabs(w1[i] - exact), 0.5 * ulp + 1e-6 * std::fabs(exact) + 1e-7) << i;
      }
      if (dt == StorageDtype::F32) continue;
      for (int h = 0; h < 4; ++h) {
        for (int64_t j = 0; j < d; ++j) {
          const int64_t i = held_ids[h] * d + j;
          const float v = held_values[h * d + j];
          EXPECT_EQ(bf16_to_f32(f32_to_bf16(v)), w1[i]) << "held row " << held_ids[h];
          const double exact = static_cast<double>(keep) * w0[i] - static_cast<double>(step) * ref.dW[i];
          EXPECT_NEAR(v, exact, 1e-6 * std::fabs(exact) + 1e-7);
        }
      }
    }
  }
  // A non-finite loss: pass 2 never runs, W is untouched.
  Param W = make_head(tracker, StorageDtype::F32);
  std::vector<float> before(V * d), after(V * d);
  W.to_f32(before.data());
  Inputs bad;
  bad.xn[0] = NAN;  // row 0 has a target
  const LmHeadTiles t = lm_head_tiles(V, N, false, true);
  std::vector<float> tile(t.tile_elems(V)), nll(N), dxn(N * d);
  std::vector<double> stats(2 * N);
  SgdStep u;
  u.keep = keep;
  u.step = step;
  LmHeadIo io;
  io.xn = bad.xn.data();
  io.targets = bad.targets.data();
  io.N = N;
  io.nll = nll.data();
  io.tiles = t;
  io.tile = tile.data();
  io.row_stats = stats.data();
  io.dxn = dxn.data();
  io.grad_scale = kScale;
  io.update = &u;
  EXPECT_TRUE(std::isnan(lm_head_loss(W.view(), io)));
  W.to_f32(after.data());
  EXPECT_EQ(before, after);
  // Every token in one row tile when the update needs it, however many there are.
  EXPECT_EQ(lm_head_tiles(V, 5000, false, true).rows, 5000);
  EXPECT_EQ(lm_head_tiles(V, 5000).rows, 4096);
}

}  // namespace
}  // namespace lomo
