// The CUDA backend's layer ops (embedding, RMSNorm, RoPE, SwiGLU, the residual add, dropout,
// bias) against the CPU reference on seeded random inputs of odd shapes, through guarded device
// arrays. OVERWRITES outputs start as NaN (a kernel that reads them shows it); ADDS outputs
// start random. Bit for bit where both backends do the same arithmetic in the same order (the
// shared element rules of ops/element/ pin every fused multiply-add); otherwise the tolerance
// is stated on the check with the reason. Without a GPU every test skips with the reason.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/rng.h"
#include "cuda_test_util.h"
#include "ops/rope.h"

namespace lomo::test {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr uint64_t kSeed = 20261201;

// x(n) ~ scale·N(0, 1) from stream `stream`.
std::vector<float> randn(int64_t n, uint64_t stream, double scale = 1.0) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    x[static_cast<size_t>(i)] = static_cast<float>(scale * counter_normal(kSeed, stream, i));
  }
  return x;
}

// A guarded device array holding `host`.
template <class T>
GuardedDeviceArray<T> on_gpu(Backend& gpu, MemoryTracker& tracker, const std::vector<T>& host) {
  GuardedDeviceArray<T> a(gpu, tracker, static_cast<int64_t>(host.size()));
  a.upload(host);
  return a;
}

// Equal bit for bit (a NaN equals a NaN of the same bits).
void expect_bits(const std::vector<float>& got, const std::vector<float>& want,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) {
      ADD_FAILURE() << what << "[" << i << "]: gpu " << got[i] << ", cpu " << want[i];
      ++bad;
    }
  }
}

// |got − want| ≤ tol·scale_i per element (scale_i > 0: the size of the terms behind element i).
void expect_close(const std::vector<float>& got, const std::vector<float>& want,
                  const std::vector<float>& scale, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= tol * scale[i])) {
      ADD_FAILURE() << what << "[" << i << "]: gpu " << got[i] << ", cpu " << want[i] << ", |diff| "
                    << err << " > " << tol << " · " << scale[i];
      ++bad;
    }
  }
}

std::vector<float> abs_plus(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> s(a.size());
  for (size_t i = 0; i < a.size(); ++i) s[i] = std::fabs(a[i]) + std::fabs(b[i]) + 1e-30f;
  return s;
}

// ---- element-wise ---------------------------------------------------------------------------

TEST(CudaLayers, FillAddAndBiasMatchTheCpuBitForBit) {
  LOMO_CUDA_OR_SKIP(gpu);
  CpuBackend cpu;
  MemoryTracker tracker;
  constexpr int64_t N = 37, out = 72, n = N * out + 5;

  GuardedDeviceArray<float> f(*gpu, tracker, n);
  f.upload(std::vector<float>(n, kNaN));
  gpu->fill(f.data(), -1.25f, n);
  expect_bits(f.download(), std::vector<float>(n, -1.25f), "fill");

  std::vector<float> y = randn(n, 1), x = randn(n, 2);  // y(n) ADDS
  auto y_gpu = on_gpu(*gpu, tracker, y), x_gpu = on_gpu(*gpu, tracker, x);
  gpu->add(y_gpu.data(), x_gpu.data(), n);
  cpu.add(y.data(), x.data(), n);
  expect_bits(y_gpu.download(), y, "add");

  const std::vector<float> b = randn(out, 3);  // b(out)
  auto b_gpu = on_gpu(*gpu, tracker, b);
  GuardedDeviceArray<float> Y_gpu(*gpu, tracker, N * out);  // Y(N, out) OVERWRITES
  Y_gpu.upload(std::vector<float>(N * out, kNaN));
  std::vector<float> Y(N * out, kNaN);
  gpu->bias_rows(Y_gpu.data(), b_gpu.data(), N, out);
  cpu.bias_rows(Y.data(), b.data(), N, out);
  expect_bits(Y_gpu.download(), Y, "bias_rows");

  // One thread per column summing rows in order in fp64: the CPU's sum exactly.
  const std::vector<float> dY = randn(N * out, 4);  // dY(N, out)
  auto dY_gpu = on_gpu(*gpu, tracker, dY);
  GuardedDeviceArray<float> db_gpu(*gpu, tracker, out);  // db(out) OVERWRITES
  db_gpu.upload(std::vector<float>(out, kNaN));
  std::vector<float> db(out, kNaN);
  gpu->bias_grad(db_gpu.data(), dY_gpu.data(), N, out);
  cpu.bias_grad(db.data(), dY.data(), N, out);
  expect_bits(db_gpu.download(), db, "bias_grad");
}

// In place (the head block, then pieces [s, 2s), one launch each): the CPU's codes, and the
// guards after the array untouched, for lengths inside the head, at its edge and over many pieces.
TEST(CudaLayers, InPlaceBf16ConversionMatchesTheCpuBitForBit) {
  LOMO_CUDA_OR_SKIP(gpu);
  CpuBackend cpu;
  MemoryTracker tracker;
  for (const int64_t n : {int64_t{1}, int64_t{3}, int64_t{1024}, int64_t{1025}, int64_t{4097},
                          int64_t{(1 << 20) + 7}}) {
    std::vector<float> x = randn(n, 40, 1e3);
    x[0] = 1.0f + std::ldexp(1.0f, -8);  // a tie
    auto x_gpu = on_gpu(*gpu, tracker, x);
    gpu->to_bf16_in_place(x_gpu.data(), n);
    cpu.to_bf16_in_place(x.data(), n);
    const std::vector<float> got = x_gpu.download();  // checks the guards
    ASSERT_EQ(0, std::memcmp(got.data(), x.data(), static_cast<size_t>(n) * 2))
        << "n " << n << ": the first 2n bytes differ";
  }
}

TEST(CudaLayers, DropoutMatchesTheCpuBitForBit) {
  LOMO_CUDA_OR_SKIP(gpu);
  CpuBackend cpu;
  MemoryTracker tracker;
  constexpr int64_t n = 37 * 72 + 3;
  const uint64_t key = counter_key(kSeed, 17);
  const std::vector<float> x = randn(n, 5);
  auto x_gpu = on_gpu(*gpu, tracker, x);
  for (float p : {0.0f, 0.3f}) {
    SCOPED_TRACE("p = " + std::to_string(p));
    GuardedDeviceArray<float> y_gpu(*gpu, tracker, n);  // y(n) OVERWRITES
    y_gpu.upload(std::vector<float>(n, kNaN));
    std::vector<float> y(n, kNaN);
    gpu->dropout(y_gpu.data(), x_gpu.data(), n, p, key);
    cpu.dropout(y.data(), x.data(), n, p, key);
    expect_bits(y_gpu.download(), y, "dropout");

    std::vector<float> z = randn(n, 6);  // z(n) ADDS
    auto z_gpu = on_gpu(*gpu, tracker, z);
    gpu->dropout_add(z_gpu.data(), x_gpu.data(), n, p, 0.7f, key);
    cpu.dropout_add(z.data(), x.data(), n, p, 0.7f, key);
    expect_bits(z_gpu.download(), z, "dropout_add");
  }
}

TEST(CudaLayers, SwiGluMatchesTheCpuToAFewUlp) {
  LOMO_CUDA_OR_SKIP(gpu);
  CpuBackend cpu;
  MemoryTracker tracker;
  constexpr int64_t n = 37 * 72 + 1;
  const std::vector<float> g = randn(n, 7, 3.0), u = randn(n, 8), dm = randn(n, 9);
  auto g_gpu = on_gpu(*gpu, tracker, g), u_gpu = on_gpu(*gpu, tracker, u);
  auto dm_gpu = on_gpu(*gpu, tracker, dm);

  // σ(g) comes from expf on the GPU and vexp (≤ 2 ulp) on the CPU: a few ulp apart, so m to
  // 2e-6 relative.
  GuardedDeviceArray<float> m_gpu(*gpu, tracker, n);  // m(n) OVERWRITES
  m_gpu.upload(std::vector<float>(n, kNaN));
  std::vector<float> m(n, kNaN);
  gpu->swiglu_forward(m_gpu.data(), g_gpu.data(), u_gpu.data(), n);
  cpu.swiglu_forward(m.data(), g.data(), u.data(), n);
  std::vector<float> m_scale(n);
  for (int64_t i = 0; i < n; ++i) m_scale[i] = std::fabs(m[i]) + 1e-30f;
  expect_close(m_gpu.download(), m, m_scale, 2e-6, "swiglu_forward m");

  // dg = dm·u·σ·(1 + g·(1 − σ)) cancels near g ≈ −1.28: the error is relative to
  // |dm·u|·(1 + |g|), not to dg.
  std::vector<float> dg_scale(n), du_scale(n);
  for (int64_t i = 0; i < n; ++i) {
    dg_scale[i] = std::fabs(dm[i] * u[i]) * (1.0f + std::fabs(g[i])) + 1e-30f;
    du_scale[i] = std::fabs(dm[i] * g[i]) + 1e-30f;
  }
  std::vector<float> dg(n, kNaN), du(n, kNaN);
  cpu.swiglu_backward(dg.data(), du.data(), dm.data(), g.data(), u.data(), n);
  {
    GuardedDeviceArray<float> dg_gpu(*gpu, tracker, n), du_gpu(*gpu, tracker, n);  // OVERWRITE
    dg_gpu.upload(std::vector<float>(n, kNaN));
    du_gpu.upload(std::vector<float>(n, kNaN));
    gpu->swiglu_backward(dg_gpu.data(), du_gpu.data(), dm_gpu.data(), g_gpu.data(), u_gpu.data(),
                         n);
    expect_close(dg_gpu.download(), dg, dg_scale, 2e-6, "swiglu_backward dg");
    expect_close(du_gpu.download(), du, du_scale, 2e-6, "swiglu_backward du");
  }
  // dg and du written over g and u, as the MLP's backward does.
  auto g2 = on_gpu(*gpu, tracker, g), u2 = on_gpu(*gpu, tracker, u);
  gpu->swiglu_backward(g2.data(), u2.data(), dm_gpu.data(), g2.data(), u2.data(), n);
  expect_close(g2.download(), dg, dg_scale, 2e-6, "swiglu_backward dg over g");
  expect_close(u2.download(), du, du_scale, 2e-6, "swiglu_backward du over u");
}

// ---- RMSNorm --------------------------------------------------------------------------------

TEST(CudaLayers, RmsNormMatchesTheCpu) {
  LOMO_CUDA_OR_SKIP(gpu);
  CpuBackend cpu;
  MemoryTracker tracker;
  constexpr int64_t N = 37;
  constexpr double eps = 1e-5;
  for (int64_t d : {int64_t{72}, int64_t{301}}) {  // 301: more columns than a block's threads
    SCOPED_TRACE("d = " + std::to_string(d));
    const std::vector<float> x = randn(N * d, 10, 2.0), w = randn(d, 11), dy = randn(N * d, 12);
    auto x_gpu = on_gpu(*gpu, tracker, x), w_gpu = on_gpu(*gpu, tracker, w);
    auto dy_gpu = on_gpu(*gpu, tracker, dy);

    // The row's Σx² is summed in another order (a block reduction) in fp64: rstd agrees to an
    // ulp of fp32, y to two.
    GuardedDeviceArray<float> y_gpu(*gpu, tracker, N * d), r_gpu(*gpu, tracker, N);
    y_gpu.upload(std::vector<float>(N * d, kNaN));
    r_gpu.upload(std::vector<float>(N, kNaN));
    std::vector<float> y(N * d, kNaN), r(N, kNaN);
    gpu->rmsnorm_forward(y_gpu.data(), r_gpu.data(), x_gpu.data(), w_gpu.data(), N, d, eps);
    cpu.rmsnorm_forward(y.data(), r.data(), x.data(), w.data(), N, d, eps);
    const std::vector<float> y_fwd = y_gpu.download(), r_dev = r_gpu.download();
    expect_close(r_dev, r, abs_plus(r, std::vector<float>(N, 0.0f)), 2.5e-7, "rstd");
    expect_close(y_fwd, y, abs_plus(y, std::vector<float>(N * d, 0.0f)), 5e-7, "y");

    // apply from the GPU's own rstd: forward's y bit for bit.
    GuardedDeviceArray<float> ya_gpu(*gpu, tracker, N * d);
    ya_gpu.upload(std::vector<float>(N * d, kNaN));
    gpu->rmsnorm_apply(ya_gpu.data(), x_gpu.data(), r_gpu.data(), w_gpu.data(), N, d);
    expect_bits(ya_gpu.download(), y_fwd, "rmsnorm_apply against forward");
    // and the CPU's apply from the same rstd: the same products, bit for bit.
    std::vector<float> ya(N * d, kNaN);
    cpu.rmsnorm_apply(ya.data(), x.data(), r_dev.data(), w.data(), N, d);
    expect_bits(y_fwd, ya, "rmsnorm_apply on the CPU from the GPU's rstd");

    // Backward from one rstd (the CPU's) on both. dx ADDS onto random values; its row dot is
    // reduced in another order in fp64, so dx agrees to ~1e-6 of the sizes of its terms. dw
    // sums rows in the CPU's order in fp64 (where the compilers fuse differently: an ulp).
    auto rc_gpu = on_gpu(*gpu, tracker, r);
    const std::vector<float> dx0 = randn(N * d, 13);
    auto dx_gpu = on_gpu(*gpu, tracker, dx0);
    GuardedDeviceArray<float> dw_gpu(*gpu, tracker, d);  // dw(d) OVERWRITES
    dw_gpu.upload(std::vector<float>(d, kNaN));
    std::vector<float> dx = dx0, dw(d, kNaN);
    gpu->rmsnorm_backward(dx_gpu.data(), dw_gpu.data(), dy_gpu.data(), x_gpu.data(), rc_gpu.data(),
                          w_gpu.data(), N, d);
    cpu.rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), r.data(), w.data(), N, d);
    std::vector<float> dx_scale(N * d), dw_scale(d, 1e-30f);
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t j = 0; j < d; ++j) {
        const int64_t i = n * d + j;
        dx_scale[i] = std::fabs(dx[i]) + std::fabs(dx0[i]) + std::fabs(r[n] * w[j] * dy[i]) +
                      std::fabs(x[i]) * r[n];
        dw_scale[j] += std::fabs(dy[i] * x[i] * r[n]);
      }
    }
    const std::vector<float> dx_dev = dx_gpu.download();
    expect_close(dx_dev, dx, dx_scale, 1e-6, "rmsnorm_backward dx");
    expect_close(dw_gpu.download(), dw, dw_scale, 1e-6, "rmsnorm_backward dw");

    // A frozen weight (dw null): the same dx.
    auto dx2_gpu = on_gpu(*gpu, tracker, dx0);
    gpu->rmsnorm_backward(dx2_gpu.data(), nullptr, dy_gpu.data(), x_gpu.data(), rc_gpu.data(),
                          w_gpu.data(), N, d);
    expect_bits(dx2_gpu.download(), dx_dev, "rmsnorm_backward dx without dw");
  }
}

// ---- RoPE -----------------------------------------------------------------------------------

TEST(CudaLayers, RopeMatchesTheCpuBitForBit) {
  LOMO_CUDA_OR_SKIP(gpu);
  CpuBackend cpu;
  MemoryTracker tracker;
  constexpr int64_t B = 2, T = 7, n_heads = 3, head_dim = 72, max_pos = 19;
  RopeConfig rc;
  rc.theta = 500000.0;
  const RopeTable table = make_rope_table(rc, head_dim, max_pos);
  const int64_t n = B * T * n_heads * head_dim;
  const std::vector<float> x0 = randn(n, 14);
  // Twice: the second call finds the table's device copy in the cache.
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE("pass " + std::to_string(pass));
    std::vector<float> x = x0;
    auto x_gpu = on_gpu(*gpu, tracker, x);
    gpu->rope_forward(x_gpu.data(), table, B, T, n_heads, head_dim);
    cpu.rope_forward(x.data(), table, B, T, n_heads, head_dim);
    expect_bits(x_gpu.download(), x, "rope_forward");
    gpu->rope_backward(x_gpu.data(), table, B, T, n_heads, head_dim);
    cpu.rope_backward(x.data(), table, B, T, n_heads, head_dim);
    expect_bits(x_gpu.download(), x, "rope_backward");
  }
  // Positions 11 … 17 (after a KV cache of 11), on one sequence.
  std::vector<float> x(x0.begin(), x0.begin() + T * n_heads * head_dim);
  auto x_gpu = on_gpu(*gpu, tracker, x);
  gpu->rope_forward_at(x_gpu.data(), table, 11, 1, T, n_heads, head_dim);
  cpu.rope_forward_at(x.data(), table, 11, 1, T, n_heads, head_dim);
  expect_bits(x_gpu.download(), x, "rope_forward_at");
  // Past the table: an error, not a read out of bounds.
  EXPECT_THROW(gpu->rope_forward_at(x_gpu.data(), table, 13, 1, T, n_heads, head_dim), Error);
}

// A new table at a freed table's address, of the same shape but other angles, is uploaded
// again. max_pos = 64: evenly spaced samples of the table would all fall on frequency 0, whose
// angles are the same for every theta.
TEST(CudaLayers, RopeTableAtAReusedAddressIsUploadedAgain) {
  LOMO_CUDA_OR_SKIP(gpu);
  CpuBackend cpu;
  MemoryTracker tracker;
  constexpr int64_t B = 1, T = 64, n_heads = 2, head_dim = 72, max_pos = 64;
  const std::vector<float> x0 = randn(B * T * n_heads * head_dim, 15);
  std::optional<RopeTable> table;  // one address for both tables
  for (double theta : {10000.0, 500000.0}) {
    SCOPED_TRACE("theta " + std::to_string(theta));
    RopeConfig rc;
    rc.theta = theta;
    table.emplace(make_rope_table(rc, head_dim, max_pos));
    std::vector<float> x = x0;
    auto x_gpu = on_gpu(*gpu, tracker, x);
    gpu->rope_forward(x_gpu.data(), *table, B, T, n_heads, head_dim);
    cpu.rope_forward(x.data(), *table, B, T, n_heads, head_dim);
    expect_bits(x_gpu.download(), x, "rope_forward");
  }
}

// The device copies are keyed by the table's serial: every table make_rope_table builds has its
// own (host-only check), and a hand-filled table (serial 0) is uploaded on each use.
TEST(CudaLayers, RopeTablesHaveDistinctSerials) {
  RopeConfig rc;
  const RopeTable a = make_rope_table(rc, 8, 16), b = make_rope_table(rc, 8, 16);
  EXPECT_NE(a.serial, 0u);
  EXPECT_NE(b.serial, 0u);
  EXPECT_NE(a.serial, b.serial);
}

TEST(CudaLayers, HandFilledRopeTableIsUploadedOnEachUse) {
  LOMO_CUDA_OR_SKIP(gpu);
  CpuBackend cpu;
  MemoryTracker tracker;
  constexpr int64_t B = 1, T = 16, n_heads = 2, head_dim = 8;
  const std::vector<float> x0 = randn(B * T * n_heads * head_dim, 16);
  RopeTable table = make_rope_table(RopeConfig{}, head_dim, T);
  table.serial = 0;
  for (int round = 0; round < 2; ++round) {
    if (round == 1) {
      for (float& c : table.cos) c = -c;  // other angles, same object
    }
    std::vector<float> x = x0;
    auto x_gpu = on_gpu(*gpu, tracker, x);
    gpu->rope_forward(x_gpu.data(), table, B, T, n_heads, head_dim);
    cpu.rope_forward(x.data(), table, B, T, n_heads, head_dim);
    expect_bits(x_gpu.download(), x, "rope_forward, round " + std::to_string(round));
  }
}

// ---- embedding ------------------------------------------------------------------------------

constexpr int64_t kV = 29, kD = 72, kN = 37;

// ids(kN) with repeats (5 four times, 0 and 28 twice), padding (−1, −3) and rows no id names.
std::vector<int32_t> embedding_ids() {
  std::vector<int32_t> ids(kN);
  for (int64_t n = 0; n < kN; ++n) ids[n] = static_cast<int32_t>((n * 7 + 3) % kV);
  ids[2] = 5, ids[9] = 5, ids[20] = 5, ids[33] = 5;
  ids[4] = 0, ids[30] = 0, ids[11] = 28, ids[12] = 28;
  ids[6] = -1, ids[25] = -3;
  return ids;
}

// A table(V, d) in `dtype`: host bits (u16 for 16-bit, f32 otherwise), and its fp32 values.
struct HostTable {
  StorageDtype dtype;
  std::vector<float> f32;
  std::vector<uint16_t> u16;
};

HostTable make_table(StorageDtype dtype, uint64_t stream) {
  HostTable t{dtype, randn(kV * kD, stream, 0.3), {}};
  if (dtype != StorageDtype::F32) {
    t.u16.resize(t.f32.size());
    for (size_t i = 0; i < t.f32.size(); ++i) {
      t.u16[i] = dtype == StorageDtype::BF16 ? f32_to_bf16(t.f32[i]) : f32_to_f16(t.f32[i]);
    }
  }
  return t;
}

const char* dtype_name(StorageDtype t) {
  return t == StorageDtype::F32 ? "fp32" : (t == StorageDtype::BF16 ? "bf16" : "fp16");
}

TEST(CudaLayers, EmbeddingForwardMatchesTheCpuBitForBit) {
  LOMO_CUDA_OR_SKIP(gpu);
  CpuBackend cpu;
  MemoryTracker tracker;
  const std::vector<int32_t> ids = embedding_ids();
  auto ids_gpu = on_gpu(*gpu, tracker, ids);
  for (StorageDtype dt : {StorageDtype::F32, StorageDtype::BF16, StorageDtype::F16}) {
    SCOPED_TRACE(dtype_name(dt));
    HostTable t = make_table(dt, 15);
    ParamView cpu_table{dt == StorageDtype::F32 ? static_cast<void*>(t.f32.data()) : t.u16.data(),
                        dt, kV, kD, 2};
    std::vector<float> out(kN * kD, kNaN);
    cpu.embedding_forward(out.data(), ids.data(), cpu_table, kN);
    GuardedDeviceArray<float> out_gpu(*gpu, tracker, kN * kD);  // out(N, d) OVERWRITES
    out_gpu.upload(std::vector<float>(kN * kD, kNaN));
    if (dt == StorageDtype::F32) {
      auto tab = on_gpu(*gpu, tracker, t.f32);
      gpu->embedding_forward(out_gpu.data(), ids_gpu.data(), {tab.data(), dt, kV, kD, 2}, kN);
      expect_bits(out_gpu.download(), out, "embedding_forward");
    } else {
      auto tab = on_gpu(*gpu, tracker, t.u16);
      gpu->embedding_forward(out_gpu.data(), ids_gpu.data(), {tab.data(), dt, kV, kD, 2}, kN);
      expect_bits(out_gpu.download(), out, "embedding_forward");
    }
  }
}

TEST(CudaLayers, EmbeddingBackwardMatchesTheCpuToRounding) {
  LOMO_CUDA_OR_SKIP(gpu);
  CpuBackend cpu;
  MemoryTracker tracker;
  const std::vector<int32_t> ids = embedding_ids();
  auto ids_gpu = on_gpu(*gpu, tracker, ids);
  const std::vector<float> dout = randn(kN * kD, 16), dt0 = randn(kV * kD, 17);
  auto dout_gpu = on_gpu(*gpu, tracker, dout);
  auto dtable_gpu = on_gpu(*gpu, tracker, dt0);  // dtable(V, d) ADDS
  std::vector<float> dtable = dt0;
  gpu->embedding_backward(dtable_gpu.data(), dout_gpu.data(), ids_gpu.data(), kN, kD);
  cpu.embedding_backward(dtable.data(), dout.data(), ids.data(), kN, kD);
  // Repeated ids add atomically, in any order: each of the ≤ 4 additions into an element rounds
  // by ≤ 2⁻²⁴ of the sum of the magnitudes added so far, on either side: within 1e-6 of it.
  std::vector<float> scale(kV * kD);
  for (int64_t i = 0; i < kV * kD; ++i) scale[i] = std::fabs(dt0[i]) + 1e-30f;
  for (int64_t n = 0; n < kN; ++n) {
    if (ids[n] < 0) continue;
    for (int64_t j = 0; j < kD; ++j) scale[ids[n] * kD + j] += std::fabs(dout[n * kD + j]);
  }
  expect_close(dtable_gpu.download(), dtable, scale, 1e-6, "embedding_backward");
}

// The table after embedding_update on the CPU and on the GPU, as fp32 (the stored values).
struct UpdateCase {
  StorageDtype dtype;
  Rounding rounding;
  float keep;
  bool held;  // rows 0, 5 and 17 held in fp32 (a 16-bit tied table)
};

TEST(CudaLayers, EmbeddingUpdateMatchesTheCpuBitForBit) {
  LOMO_CUDA_OR_SKIP(gpu);
  CpuBackend cpu;
  MemoryTracker tracker;
  const std::vector<int32_t> ids = embedding_ids();
  auto ids_gpu = on_gpu(*gpu, tracker, ids);
  const std::vector<float> dout = randn(kN * kD, 18);
  auto dout_gpu = on_gpu(*gpu, tracker, dout);
  const std::vector<int32_t> held_rows = {0, 5, 17};  // 0 and 5 repeated, 17 once
  const std::vector<float> held_values = randn(3 * kD, 19, 0.3);
  auto held_rows_gpu = on_gpu(*gpu, tracker, held_rows);
  auto held_values_gpu = on_gpu(*gpu, tracker, held_values);

  std::vector<UpdateCase> cases;
  for (float keep : {1.0f, 0.99f}) {
    cases.push_back({StorageDtype::F32, Rounding::Nearest, keep, false});
    for (Rounding r : {Rounding::Nearest, Rounding::Stochastic}) {
      cases.push_back({StorageDtype::BF16, r, keep, false});
      cases.push_back({StorageDtype::BF16, r, keep, true});
    }
    cases.push_back({StorageDtype::F16, Rounding::Nearest, keep, false});
  }
  for (const UpdateCase& c : cases) {
    SCOPED_TRACE(std::string(dtype_name(c.dtype)) + " keep " + std::to_string(c.keep) +
                 (c.rounding == Rounding::Nearest ? " nearest" : " stochastic") +
                 (c.held ? " held" : ""));
    SgdStep s;
    s.keep = c.keep;
    s.step = 0.3f;
    s.rounding = {c.rounding, 11, 4};
    HostTable t = make_table(c.dtype, 20);
    const bool f32 = c.dtype == StorageDtype::F32;
    std::vector<int32_t> order(kN, -7);
    ParamView cpu_table{f32 ? static_cast<void*>(t.f32.data()) : t.u16.data(), c.dtype, kV, kD, 6};
    const HeldRows cpu_held =
        c.held ? HeldRows{held_rows.data(), 3, const_cast<float*>(held_values.data())} : HeldRows{};
    GuardedDeviceArray<int32_t> order_gpu(*gpu, tracker, kN);  // scratch
    order_gpu.upload(std::vector<int32_t>(kN, -7));
    const HeldRows gpu_held =
        c.held ? HeldRows{held_rows_gpu.data(), 3, held_values_gpu.data()} : HeldRows{};
    if (f32) {
      auto tab = on_gpu(*gpu, tracker, t.f32);
      gpu->embedding_update({tab.data(), c.dtype, kV, kD, 6}, dout_gpu.data(), ids_gpu.data(), kN,
                            order_gpu.data(), s, gpu_held);
      cpu.embedding_update(cpu_table, dout.data(), ids.data(), kN, order.data(), s, cpu_held);
      expect_bits(tab.download(), t.f32, "embedding_update");
    } else {
      auto tab = on_gpu(*gpu, tracker, t.u16);
      gpu->embedding_update({tab.data(), c.dtype, kV, kD, 6}, dout_gpu.data(), ids_gpu.data(), kN,
                            order_gpu.data(), s, gpu_held);
      cpu.embedding_update(cpu_table, dout.data(), ids.data(), kN, order.data(), s, cpu_held);
      const std::vector<uint16_t> got = tab.download();
      int bad = 0;
      for (int64_t i = 0; i < kV * kD && bad < 5; ++i) {
        if (got[i] != t.u16[i]) {
          ADD_FAILURE() << "embedding_update row " << i / kD << " col " << i % kD << ": gpu 0x"
                        << std::hex << got[i] << ", cpu 0x" << t.u16[i] << std::dec;
          ++bad;
        }
      }
    }
    order_gpu.download();  // its guards
  }
}

}  // namespace
}  // namespace lomo::test
