// The CUDA backend's attention (forward, backward, over a KV cache) and fused LM head against the
// CPU backend, the reference (itself checked by finite differences and the PyTorch dumps), on
// seeded random inputs: GQA groups 3, 2 and 1, head_dim 8 to 256, lengths below T (padding rows),
// every LM-head schedule with fp32 and bf16 heads, and the zero-buffer update. Outputs start as
// NaN inside guarded device arrays: an output left unwritten or a write out of bounds fails.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/half.h"
#include "cuda_test_util.h"

namespace lomo::test {
namespace {

std::vector<float> randn(int64_t n, uint32_t seed, double stddev = 1.0) {
  std::mt19937 g(seed);
  std::normal_distribution<double> d(0.0, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(d(g));
  return v;
}

std::vector<float> nans(int64_t n) {
  return std::vector<float>(static_cast<size_t>(n), NAN);
}

// Every other element from `first`: the (…, 2) stats' max (0) or 1/Σ (1) column.
std::vector<float> column(const std::vector<float>& x, size_t first) {
  std::vector<float> c;
  for (size_t i = first; i < x.size(); i += 2) c.push_back(x[i]);
  return c;
}

// A guarded device array holding a copy of `host`.
template <class T>
class Dev {
 public:
  Dev(Backend& b, MemoryTracker& t, const std::vector<T>& host)
      : a_(b, t, static_cast<int64_t>(host.size())) {
    a_.upload(host);
  }
  T* data() { return a_.data(); }
  std::vector<T> download() { return a_.download(); }

 private:
  GuardedDeviceArray<T> a_;
};

std::unique_ptr<Backend> cpu_backend() {
  return make_backend({.device = "cpu", .threads = 2});
}

// ---- attention -----------------------------------------------------------------------------

struct AttnCase {
  int64_t B, T, n_head, n_kv, hd;
  std::vector<int32_t> lengths;  // (B)
  std::string name() const {
    return "B=" + std::to_string(B) + " T=" + std::to_string(T) + " heads " +
           std::to_string(n_head) + ":" + std::to_string(n_kv) + " hd=" + std::to_string(hd);
  }
};

std::vector<AttnCase> attention_cases() {
  return {
      {2, 65, 9, 3, 8, {65, 40}},       {2, 130, 4, 2, 64, {130, 77}}, {2, 1, 6, 6, 128, {1, 1}},
      {3, 65, 6, 6, 128, {65, 17, 64}}, {2, 130, 9, 3, 8, {129, 130}}, {1, 130, 4, 2, 128, {130}},
      {2, 65, 4, 2, 256, {65, 50}},     {1, 33, 4, 1, 40, {33}},  // 40: a partial lane column
      {2, 33, 4, 2, 64, {0, 33}},                                 // a sequence of padding only
  };
}

TEST(CudaAttention, ForwardAndBackwardMatchTheCpu) {
  LOMO_CUDA_OR_SKIP(gpu);
  const auto cpu = cpu_backend();
  MemoryTracker tracker;
  uint32_t seed = 100;
  for (const AttnCase& c : attention_cases()) {
    SCOPED_TRACE(c.name());
    const AttnDims d{c.B, c.T, c.n_head, c.n_kv, c.hd};
    const int64_t qn = c.B * c.T * c.n_head * c.hd;  // (B, T, n_head, hd)
    const int64_t kn = c.B * c.T * c.n_kv * c.hd;    // (B, T, n_kv, hd)
    const int64_t sn = attention_stats_elems(d);     // (B, n_head, T, 2)
    const auto q = randn(qn, ++seed), k = randn(kn, ++seed), v = randn(kn, ++seed),
               dout = randn(qn, ++seed);

    std::vector<float> out_c(qn), st_c(sn), dq_c(qn), dk_c(kn), dv_c(kn);
    std::vector<float> work_c(static_cast<size_t>(cpu->attention_workspace_elems(d)));
    cpu->attention_forward(out_c.data(), st_c.data(), work_c.data(), q.data(), k.data(), v.data(),
                           c.lengths.data(), d);
    cpu->attention_backward(dq_c.data(), dk_c.data(), dv_c.data(), work_c.data(), dout.data(),
                            st_c.data(), q.data(), k.data(), v.data(), c.lengths.data(), d);

    Dev<float> qg(*gpu, tracker, q), kg(*gpu, tracker, k), vg(*gpu, tracker, v),
        dog(*gpu, tracker, dout);
    Dev<int32_t> lg(*gpu, tracker, c.lengths);
    Dev<float> out_g(*gpu, tracker, nans(qn)), st_g(*gpu, tracker, nans(sn)),
        work_g(*gpu, tracker, nans(std::max<int64_t>(1, gpu->attention_workspace_elems(d))));
    gpu->attention_forward(out_g.data(), st_g.data(), work_g.data(), qg.data(), kg.data(),
                           vg.data(), lg.data(), d);
    Dev<float> dq_g(*gpu, tracker, nans(qn)), dk_g(*gpu, tracker, nans(kn)),
        dv_g(*gpu, tracker, nans(kn));
    gpu->attention_backward(dq_g.data(), dk_g.data(), dv_g.data(), work_g.data(), dog.data(),
                            st_g.data(), qg.data(), kg.data(), vg.data(), lg.data(), d);
    const auto out = out_g.download(), st = st_g.download(), dq = dq_g.download(),
               dk = dk_g.download(), dv = dv_g.download();

    // fp32 throughout, fp64 sums of exponentials on both sides; only the order of the fp32
    // dot products and accumulations differs.
    EXPECT_LE(rel_err(out, out_c), 1e-5);
    EXPECT_LE(rel_err(column(st, 0), column(st_c, 0)), 1e-5);
    EXPECT_LE(rel_err(column(st, 1), column(st_c, 1)), 1e-5);
    EXPECT_LE(rel_err(dq, dq_c), 1e-5);
    EXPECT_LE(rel_err(dk, dk_c), 1e-5);
    EXPECT_LE(rel_err(dv, dv_c), 1e-5);
    // Padding rows: out, stats, dq and the keys' dk, dv are exactly 0.
    ASSERT_NO_FATAL_FAILURE(
        expect_padding_rows_zero(out, dq, dk, dv, c.lengths, c.T, c.n_head, c.n_kv, c.hd));
    for (int64_t b = 0; b < c.B; ++b) {
      for (int64_t t = c.lengths[static_cast<size_t>(b)]; t < c.T; ++t) {
        for (int64_t h = 0; h < c.n_head; ++h) {
          const size_t i = static_cast<size_t>(((b * c.n_head + h) * c.T + t) * 2);
          ASSERT_EQ(st[i], 0.0f);
          ASSERT_EQ(st[i + 1], 0.0f);
        }
      }
    }
    // No atomics: a second backward gives the same bits.
    Dev<float> dq2(*gpu, tracker, nans(qn)), dk2(*gpu, tracker, nans(kn)),
        dv2(*gpu, tracker, nans(kn));
    gpu->attention_backward(dq2.data(), dk2.data(), dv2.data(), work_g.data(), dog.data(),
                            st_g.data(), qg.data(), kg.data(), vg.data(), lg.data(), d);
    EXPECT_EQ(dq2.download(), dq);
    EXPECT_EQ(dk2.download(), dk);
    EXPECT_EQ(dv2.download(), dv);
    work_g.download();  // its guards: D stays inside the workspace the backend asked for
  }
}

struct KvCase {
  int64_t B, T, n_head, n_kv, hd;
};

// attention_cached fed as in inference: the whole prompt, one token at a time, chunks of 5.
TEST(CudaAttention, CachedMatchesTheCpu) {
  LOMO_CUDA_OR_SKIP(gpu);
  const auto cpu = cpu_backend();
  MemoryTracker tracker;
  uint32_t seed = 500;
  for (const KvCase& c : {KvCase{2, 65, 9, 3, 8}, KvCase{2, 65, 4, 2, 64}, KvCase{1, 40, 6, 6, 128},
                          KvCase{1, 33, 4, 2, 256}}) {
    const int64_t cap = c.T + 3;  // rows past T are NaN and never read
    const int64_t kvd = c.n_kv * c.hd, qd = c.n_head * c.hd;
    std::vector<float> kc = nans(c.B * cap * kvd),
                       vc = nans(c.B * cap * kvd);  // (B, cap, n_kv, hd)
    const auto kr = randn(c.B * c.T * kvd, ++seed), vr = randn(c.B * c.T * kvd, ++seed);
    for (int64_t b = 0; b < c.B; ++b) {
      std::copy(kr.begin() + b * c.T * kvd, kr.begin() + (b + 1) * c.T * kvd,
                kc.begin() + b * cap * kvd);
      std::copy(vr.begin() + b * c.T * kvd, vr.begin() + (b + 1) * c.T * kvd,
                vc.begin() + b * cap * kvd);
    }
    const auto q = randn(c.B * c.T * qd, ++seed);  // (B, T, n_head, hd)
    Dev<float> kg(*gpu, tracker, kc), vg(*gpu, tracker, vc);
    for (int64_t step : {c.T, int64_t{1}, int64_t{5}}) {
      SCOPED_TRACE("hd " + std::to_string(c.hd) + " heads " + std::to_string(c.n_head) + ":" +
                   std::to_string(c.n_kv) + ", feed " + std::to_string(step));
      double err = 0;
      for (int64_t past = 0; past < c.T; past += step) {
        const int64_t n = std::min(step, c.T - past);
        std::vector<float> qc(static_cast<size_t>(c.B * n * qd));  // (B, n, n_head, hd)
        for (int64_t b = 0; b < c.B; ++b) {
          std::copy(q.begin() + (b * c.T + past) * qd, q.begin() + (b * c.T + past + n) * qd,
                    qc.begin() + b * n * qd);
        }
        const KvAttnDims dims{c.B, n, past, cap, c.n_head, c.n_kv, c.hd};
        std::vector<float> out_c(qc.size());
        std::vector<float> work_c(static_cast<size_t>(cpu->attention_cached_workspace_elems(dims)));
        cpu->attention_cached(out_c.data(), work_c.data(), qc.data(), kc.data(), vc.data(), dims);
        Dev<float> qg(*gpu, tracker, qc), out_g(*gpu, tracker, nans(c.B * n * qd)),
            work_g(*gpu, tracker,
                   nans(std::max<int64_t>(1, gpu->attention_cached_workspace_elems(dims))));
        gpu->attention_cached(out_g.data(), work_g.data(), qg.data(), kg.data(), vg.data(), dims);
        err = std::max(err, rel_err(out_g.download(), out_c));
        work_g.download();  // its guards
      }
      EXPECT_LE(err, 1e-5);
    }
  }
}

// ---- the LM head ---------------------------------------------------------------------------

struct HeadData {
  int64_t N, d, V;
  StorageDtype dtype;
  std::vector<float> w;          // (V, d) the head's values (bf16-exact for a bf16 head)
  std::vector<uint16_t> w16;     // (V, d) its bf16 codes (bf16 head)
  std::vector<float> xn;         // (N, d)
  std::vector<uint16_t> xn16;    // (N, d) xn rounded to nearest bf16
  std::vector<int32_t> targets;  // (N), −1 on every fourth row

  HeadData(int64_t N_, int64_t d_, int64_t V_, StorageDtype dt, uint32_t seed)
      : N(N_), d(d_), V(V_), dtype(dt), w(randn(V_ * d_, seed, 0.3)), xn(randn(N_ * d_, seed + 1)) {
    if (dtype == StorageDtype::BF16) {
      for (float& x : w) {
        w16.push_back(f32_to_bf16(x));
        x = bf16_to_f32(w16.back());
      }
    }
    for (float x : xn) xn16.push_back(f32_to_bf16(x));
    for (int64_t i = 0; i < N; ++i) {
      targets.push_back(i % 4 == 3 ? -1 : static_cast<int32_t>((i * 7) % V));
    }
  }
};

enum class Mode { Forward, Train, Frozen, Update };

struct HeadRun {
  LmHeadTiles tiles;
  Mode mode = Mode::Train;
  bool bf16_products = false;
  bool bad_input = false;   // xn[0] = NaN (row 0 has a target)
  bool stochastic = false;  // the update's write-back rounds stochastically
};

struct HeadOut {
  double sum = 0;
  std::vector<float> nll, dxn, dW, logits;
  std::vector<float> w_after;  // (V, d) fp32 values of W after the call
  std::vector<float> held;     // (held rows, d)
};

const std::vector<int32_t> kHeld{0, 7, 20, 36};  // ascending; blocks of 5 and 16 split them

SgdStep update_step(bool stochastic) {
  SgdStep u;
  u.keep = 0.97f;
  u.step = 0.5f;
  u.rounding.rounding = stochastic ? Rounding::Stochastic : Rounding::Nearest;
  u.rounding.seed = 11;
  u.rounding.step = 5;
  return u;
}

// The head run on `be`; pointers in its memory (host vectors for the CPU, guarded device arrays
// otherwise, NaN-filled where the op writes).
HeadOut run_head(Backend& be, MemoryTracker& tracker, const HeadData& h, const HeadRun& r) {
  const bool bf16 = h.dtype == StorageDtype::BF16;
  const int64_t te = r.tiles.tile_elems(h.V);
  const bool held = bf16 && r.mode == Mode::Update;
  std::vector<float> xn = h.xn;
  if (r.bad_input) xn[0] = NAN;
  std::vector<float> w32 = h.w;
  std::vector<uint16_t> w16 = h.w16;
  Dev<float> xn_g(be, tracker, xn), w32_g(be, tracker, w32), tile(be, tracker, nans(te)),
      w_block(be, tracker, nans(r.tiles.cols * h.d)), nll(be, tracker, nans(h.N)),
      dxn(be, tracker, nans(h.N * h.d)), dW(be, tracker, nans(h.V * h.d)),
      held_values(be, tracker, nans(static_cast<int64_t>(kHeld.size()) * h.d));
  Dev<uint16_t> w16_g(be, tracker, w16), xn16(be, tracker, h.xn16),
      tile16(be, tracker, std::vector<uint16_t>(static_cast<size_t>(te), 0x7fc0));
  Dev<int32_t> targets(be, tracker, h.targets), held_rows(be, tracker, kHeld);
  Dev<double> row_stats(be, tracker, std::vector<double>(static_cast<size_t>(2 * h.N), NAN));

  ParamView W;
  W.data = bf16 ? static_cast<void*>(w16_g.data()) : static_cast<void*>(w32_g.data());
  W.dtype = h.dtype;
  W.rows = h.V;
  W.cols = h.d;
  W.id = 3;
  const SgdStep u = update_step(r.stochastic);
  HeadOut out;
  LmHeadIo io;
  io.xn = xn_g.data();
  io.targets = targets.data();
  io.N = h.N;
  io.nll = nll.data();
  io.tiles = r.tiles;
  io.tile = tile.data();
  io.w_block = w_block.data();
  io.row_stats = row_stats.data();
  if (r.bf16_products) {
    io.xn16 = xn16.data();
    io.tile16 = tile16.data();
  }
  if (r.mode != Mode::Forward) {
    io.dxn = dxn.data();
    io.grad_scale = 0.1f;
  }
  if (r.mode == Mode::Train) io.dW = dW.data();
  if (r.mode == Mode::Update) io.update = &u;
  if (held) io.held = {held_rows.data(), static_cast<int64_t>(kHeld.size()), held_values.data()};
  if (r.mode == Mode::Forward) io.logits_out = &out.logits;
  out.sum = be.lm_head_loss(W, io);
  out.nll = nll.download();
  if (r.mode != Mode::Forward) out.dxn = dxn.download();
  if (r.mode == Mode::Train) out.dW = dW.download();
  if (bf16) {
    for (uint16_t x : w16_g.download()) out.w_after.push_back(bf16_to_f32(x));
  } else {
    out.w_after = w32_g.download();
  }
  if (held) out.held = held_values.download();
  // The scratch's guards: no write outside the sizes the op's contract gives.
  tile.download();
  w_block.download();
  tile16.download();
  row_stats.download();
  return out;
}

std::string describe(const HeadData& h, const HeadRun& r) {
  static const char* modes[] = {"forward", "train", "frozen head", "zero-buffer update"};
  return std::string(h.dtype == StorageDtype::BF16 ? "bf16" : "fp32") + " head " +
         std::to_string(h.V) + "x" + std::to_string(h.d) + ", N " + std::to_string(h.N) +
         ", tiles " + std::to_string(r.tiles.rows) + "x" + std::to_string(r.tiles.cols) +
         (r.tiles.one_pass ? " one pass, " : " two passes, ") + modes[static_cast<int>(r.mode)] +
         (r.bf16_products ? ", bf16 products" : "");
}

// GPU against CPU on one run. fp32 products differ in their summation order only; bf16 products
// round dlogits to bf16, where an fp32 difference of an ulp can move one element by a bf16 ulp.
void expect_head_matches(Backend& gpu, Backend& cpu, MemoryTracker& tracker, const HeadData& h,
                         const HeadRun& r) {
  SCOPED_TRACE(describe(h, r));
  const HeadOut g = run_head(gpu, tracker, h, r), c = run_head(cpu, tracker, h, r);
  const double grad_tol = r.bf16_products ? 1e-2 : 1e-5;
  EXPECT_NEAR(g.sum, c.sum, 1e-5 * std::fabs(c.sum));
  EXPECT_LE(rel_err(g.nll, c.nll), 1e-5);
  for (int64_t i = 0; i < h.N; ++i) {
    if (h.targets[static_cast<size_t>(i)] < 0) {
      EXPECT_EQ(g.nll[static_cast<size_t>(i)], 0.0f);
    }
  }
  if (r.mode == Mode::Forward) {
    EXPECT_LE(rel_err(g.logits, c.logits), 1e-5);
  } else {
    EXPECT_LE(rel_err(g.dxn, c.dxn), grad_tol);
  }
  if (r.mode == Mode::Train) {
    EXPECT_LE(rel_err(g.dW, c.dW), grad_tol);
  }
  if (r.mode != Mode::Update) {
    EXPECT_EQ(g.w_after, h.w);  // W is read only
    return;
  }
  if (h.dtype == StorageDtype::F32) {
    EXPECT_LE(rel_err(g.w_after, c.w_after), 1e-5);
    return;
  }
  // bf16: each element rounded once to nearest from fp32 values that agree to fp32 rounding:
  // the same code, or a neighbour.
  for (size_t i = 0; i < g.w_after.size(); ++i) {
    const double a = g.w_after[i], b = c.w_after[i];
    ASSERT_LE(std::fabs(a - b), std::ldexp(std::max(std::fabs(a), std::fabs(b)), -7) + 1e-7)
        << "element " << i;
  }
  EXPECT_LE(rel_err(g.held, c.held), 1e-5);
  for (size_t k = 0; k < kHeld.size(); ++k) {
    for (int64_t j = 0; j < h.d; ++j) {
      const float v = g.held[k * static_cast<size_t>(h.d) + static_cast<size_t>(j)];
      EXPECT_EQ(bf16_to_f32(f32_to_bf16(v)), g.w_after[static_cast<size_t>(kHeld[k] * h.d + j)])
          << "held row " << kHeld[k];
    }
  }
}

TEST(CudaLmHead, EveryScheduleMatchesTheCpu) {
  LOMO_CUDA_OR_SKIP(gpu);
  const auto cpu = cpu_backend();
  MemoryTracker tracker;
  // The test_lm_head.cpp shape, and one with rows longer than a block of threads.
  for (const auto& [N, d, V] : {std::tuple<int64_t, int64_t, int64_t>{13, 24, 37},
                                std::tuple<int64_t, int64_t, int64_t>{70, 64, 300}}) {
    for (StorageDtype dt : {StorageDtype::F32, StorageDtype::BF16}) {
      const HeadData h(N, d, V, dt, 7);
      for (bool bf16_products : {false, true}) {
        if (bf16_products && dt != StorageDtype::BF16) continue;
        // Every tile shape of test_lm_head.cpp on the small head; fewer, larger ones on the
        // large head (a 1x1 tile there is 21000 tiles).
        const std::vector<LmHeadTiles> tiles =
            V < 100
                ? std::vector<LmHeadTiles>{LmHeadTiles{N, V},        LmHeadTiles{1, 1},
                                           LmHeadTiles{3, 5},        LmHeadTiles{5, 16},
                                           LmHeadTiles{12, 36},      lm_head_tiles(V, N),
                                           LmHeadTiles{N, V, true},  LmHeadTiles{1, 1, true},
                                           LmHeadTiles{5, 16, true}, LmHeadTiles{12, 36, true},
                                           lm_head_tiles(V, N, true)}
                : std::vector<LmHeadTiles>{LmHeadTiles{N, V},          LmHeadTiles{9, 64},
                                           lm_head_tiles(V, N),        LmHeadTiles{N, V, true},
                                           LmHeadTiles{16, 100, true}, lm_head_tiles(V, N, true)};
        for (LmHeadTiles t : tiles) {
          for (Mode m : {Mode::Forward, Mode::Train, Mode::Frozen}) {
            if (m == Mode::Forward && t.one_pass) continue;
            expect_head_matches(*gpu, *cpu, tracker, h, HeadRun{t, m, bf16_products});
          }
        }
        const std::vector<LmHeadTiles> update_tiles =
            V < 100
                ? std::vector<LmHeadTiles>{LmHeadTiles{N, 5}, LmHeadTiles{N, 16}, LmHeadTiles{N, V},
                                           lm_head_tiles(V, N, false, true)}
                : std::vector<LmHeadTiles>{LmHeadTiles{N, 64}, lm_head_tiles(V, N, false, true)};
        for (LmHeadTiles t : update_tiles) {
          expect_head_matches(*gpu, *cpu, tracker, h, HeadRun{t, Mode::Update, bf16_products});
        }
      }
    }
  }
}

// The zero-buffer update of a bf16 head written back with stochastic rounding: each element's
// random bits are keyed by its index in W (not in the block of W being written), as the CPU's.
// Both sides round fp32 values that agree to fp32 rounding with the same 16 random bits, so a
// code differs only when the bits fall between the two values: about (difference in fp32 ulps)
// / 65536 per element, a handful over the head. Bits keyed by the wrong index disagree on a
// large fraction of the elements (whenever the two draws pick different neighbours).
TEST(CudaLmHead, StochasticWriteBackMatchesTheCpu) {
  LOMO_CUDA_OR_SKIP(gpu);
  const auto cpu = cpu_backend();
  MemoryTracker tracker;
  const HeadData h(70, 64, 300, StorageDtype::BF16, 13);
  for (bool bf16_products : {false, true}) {
    for (LmHeadTiles t : {LmHeadTiles{70, 64}, lm_head_tiles(300, 70, false, true)}) {
      HeadRun r{t, Mode::Update, bf16_products};
      r.stochastic = true;
      SCOPED_TRACE(describe(h, r));
      const HeadOut g = run_head(*gpu, tracker, h, r), c = run_head(*cpu, tracker, h, r);
      size_t differ = 0;
      for (size_t i = 0; i < g.w_after.size(); ++i) differ += g.w_after[i] != c.w_after[i];
      EXPECT_LE(differ, 4 + g.w_after.size() / 1000) << "of " << g.w_after.size();
      EXPECT_LE(rel_err(g.held, c.held), 1e-5);
    }
  }
}

TEST(CudaLmHead, NonFiniteLossLeavesTheHeadUntouched) {
  LOMO_CUDA_OR_SKIP(gpu);
  MemoryTracker tracker;
  for (StorageDtype dt : {StorageDtype::F32, StorageDtype::BF16}) {
    const HeadData h(13, 24, 37, dt, 9);
    const HeadRun r{lm_head_tiles(37, 13, false, true), Mode::Update, false, true};
    const HeadOut g = run_head(*gpu, tracker, h, r);
    EXPECT_TRUE(std::isnan(g.sum));
    EXPECT_EQ(g.w_after, h.w);
  }
}

}  // namespace
}  // namespace lomo::test
