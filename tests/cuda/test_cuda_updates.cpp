// The CUDA backend's conversions, gradient checks and optimizer updates against the CPU backend
// (ops/cpu/convert.cpp, ops/cpu/update.cpp), on seeded random inputs of odd sizes, every output
// in a guarded device array. Bit for bit where the op has no reduction (the element rules of
// ops/element/update.h are the same code on both devices, stochastic rounding included); to
// rounding where a sum runs in another order (sum_squares, AdaLomo's r, Σu², Σθ²) or where the
// device's fp64 log/cospi differ from the host's in the last ulp (fill_normal). Without a GPU
// those tests skip with the reason; the ElementRules tests run on the host everywhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/rng.h"
#include "core/rounding.h"
#include "cuda_test_util.h"
#include "ops/element/normal.h"
#include "ops/element/update.h"

namespace lomo::test {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
const int64_t kSizes[] = {1, 1000, 65537};

std::vector<float> randn(int64_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = d(rng);
  return x;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Indices where a and b differ in their bits (NaNs of any payload count as equal): at most 5.
std::vector<int64_t> bit_mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<int64_t> bad;
  for (size_t i = 0; i < a.size() && bad.size() < 5; ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (bits(a[i]) != bits(b[i])) bad.push_back(static_cast<int64_t>(i));
  }
  return bad;
}

// The CPU reference and the memory the device arrays are tracked in.
struct Rig {
  CpuBackend cpu{2};
  MemoryTracker tracker;
};

// A parameter with the same stored values on the host (for the CPU) and on the GPU.
class TwinParam {
 public:
  TwinParam(Backend& gpu, MemoryTracker& tracker, StorageDtype dtype, int64_t rows, int64_t cols,
            const std::vector<float>& values, int id)
      : dtype_(dtype), rows_(rows), cols_(cols), id_(id) {
    const int64_t n = rows * cols;
    if (dtype == StorageDtype::F32) {
      h32_ = values;
      d32_ = std::make_unique<GuardedDeviceArray<float>>(gpu, tracker, n);
      d32_->upload(h32_);
    } else {
      h16_.resize(values.size());
      for (size_t i = 0; i < values.size(); ++i) {
        h16_[i] = dtype == StorageDtype::F16 ? f32_to_f16(values[i]) : f32_to_bf16(values[i]);
      }
      d16_ = std::make_unique<GuardedDeviceArray<uint16_t>>(gpu, tracker, n);
      d16_->upload(h16_);
    }
  }
  ParamView host() {
    return {dtype_ == StorageDtype::F32 ? static_cast<void*>(h32_.data()) : h16_.data(), dtype_,
            rows_, cols_, id_};
  }
  ParamView device() {
    return {dtype_ == StorageDtype::F32 ? static_cast<void*>(d32_->data()) : d16_->data(), dtype_,
            rows_, cols_, id_};
  }
  // The stored values as fp32 (each 16-bit code converts exactly).
  std::vector<float> host_values() const { return as_f32(h32_, h16_); }
  std::vector<float> device_values() {
    if (dtype_ == StorageDtype::F32) return d32_->download();
    return as_f32({}, d16_->download());
  }

 private:
  std::vector<float> as_f32(const std::vector<float>& f, const std::vector<uint16_t>& h) const {
    if (dtype_ == StorageDtype::F32) return f;
    std::vector<float> out(h.size());
    for (size_t i = 0; i < h.size(); ++i) {
      out[i] = dtype_ == StorageDtype::F16 ? f16_to_f32(h[i]) : bf16_to_f32(h[i]);
    }
    return out;
  }
  StorageDtype dtype_;
  int64_t rows_, cols_;
  int id_;
  std::vector<float> h32_;
  std::vector<uint16_t> h16_;
  std::unique_ptr<GuardedDeviceArray<float>> d32_;
  std::unique_ptr<GuardedDeviceArray<uint16_t>> d16_;
};

const char* dtype_name(StorageDtype t) {
  return t == StorageDtype::F32 ? "f32" : t == StorageDtype::BF16 ? "bf16" : "f16";
}

// Every (dtype, rounding) a 16-bit or fp32 parameter is written back with.
struct Storage {
  StorageDtype dtype;
  Rounding rounding;
};
const Storage kStorages[] = {{StorageDtype::F32, Rounding::Nearest},
                             {StorageDtype::BF16, Rounding::Nearest},
                             {StorageDtype::BF16, Rounding::Stochastic},
                             {StorageDtype::F16, Rounding::Nearest}};

// ---- the element rules, on the host (every build) ---------------------------------------------

TEST(ElementRules, Store16IsStore16WithTheKeyHoisted) {
  const std::vector<float> x = randn(4096, 1, 3.0f);
  for (StorageDtype t : {StorageDtype::BF16, StorageDtype::F16}) {
    for (Rounding rd : {Rounding::Nearest, Rounding::Stochastic}) {
      const RoundingMode r{rd, 1234, 77};
      const element::Store16 st = element::Store16::of(t, r, 9);
      for (int64_t i = 0; i < static_cast<int64_t>(x.size()); ++i) {
        ASSERT_EQ(st(x[static_cast<size_t>(i)], i), store16(t, x[static_cast<size_t>(i)], r, 9, i))
            << dtype_name(t) << " element " << i;
      }
      for (float s : {kInf, -kInf, kNaN, 0.0f, -0.0f, FLT_MAX, 1e-40f}) {
        EXPECT_EQ(st(s, 5), store16(t, s, r, 9, 5)) << dtype_name(t) << " " << s;
      }
    }
  }
}

TEST(ElementRules, StochasticBf16MatchesRoundBf16) {
  const RoundingMode r{Rounding::Stochastic, 99, 3};
  const uint64_t key = rounding_key(r, 4);
  const std::vector<float> x = randn(2048, 2, 1.0f);
  for (int64_t i = 0; i < 2048; ++i) {
    ASSERT_EQ(element::bf16_stochastic(x[static_cast<size_t>(i)], key, i),
              round_bf16(x[static_cast<size_t>(i)], r, 4, i));
  }
}

TEST(ElementRules, ClipIsStdClampWithNaNKept) {
  for (float g : {0.0f, -0.0f, 0.5f, -0.5f, 2.0f, -2.0f, kInf, -kInf, 1.0f, -1.0f}) {
    EXPECT_EQ(bits(element::clip(g, 1.0f)), bits(std::clamp(g, -1.0f, 1.0f))) << g;
  }
  EXPECT_TRUE(std::isnan(element::clip(kNaN, 1.0f)));
}

TEST(ElementRules, FiniteAndBeyondOnSpecialValues) {
  for (float g : {0.0f, -0.0f, 1.0f, FLT_MAX, -FLT_MAX, 1e-45f, kInf, -kInf, kNaN}) {
    EXPECT_EQ(element::finite(g), static_cast<bool>(std::isfinite(g))) << g;
  }
  EXPECT_FALSE(element::beyond(2.0f, 2.0f));
  EXPECT_FALSE(element::beyond(-2.0f, 2.0f));
  EXPECT_TRUE(element::beyond(std::nextafter(2.0f, 3.0f), 2.0f));
  EXPECT_TRUE(element::beyond(-kInf, 2.0f));
  EXPECT_TRUE(element::beyond(kNaN, 2.0f));
  EXPECT_TRUE(element::beyond(kNaN, kInf));
  EXPECT_FALSE(element::beyond(kInf, kInf));
}

TEST(ElementRules, SgdFusesTheDecayProduct) {
  // w·keep = (1 + 2^-23)(1 + 2^-22) = 1 + 3·2^-23 + 2^-45 exactly inside the fma; minus step·g = 1
  // leaves 3·2^-23 + 2^-45, which a separately rounded w·keep would have lost.
  const float w = 1.0f + 0x1.0p-23f, keep = 1.0f + 0x1.0p-22f;
  EXPECT_EQ(element::sgd(w, 1.0f, keep, 1.0f), 0x3.0p-23f + 0x1.0p-45f);
  // step·g is rounded first: (1 + 2^-23)² − 1 rounds to 2^-22 before it is subtracted.
  EXPECT_EQ(element::sgd(1.0f, w, 1.0f, w), 1.0f - (1.0f + 0x1.0p-22f));
}

TEST(ElementRules, AdamWElementFollowsTorch) {
  // One element against torch.optim.AdamW's formula in fp64, to fp32 rounding.
  const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, lr = 1e-3f, wd = 0.1f, c = 0.5f;
  const float bc1 = 1 - 0.9f * 0.9f, bc2 = 1 - 0.999f * 0.999f;
  const auto k = element::adamw_coefs(b1, b2, eps, lr, wd, c, bc1, bc2);
  EXPECT_EQ(k.decay, std::fma(-lr, wd, 1.0f));
  float w = 0.7f, m = 0.01f, v = 1e-4f;
  const float g = -0.3f;
  element::adamw(w, m, v, g, k);
  const double gd = double(c) * g;
  const double md = b1 * 0.01 + (1 - double(b1)) * gd, vd = b2 * 1e-4 + (1 - double(b2)) * gd * gd;
  const double wdd = 0.7 * (1 - double(lr) * wd) - lr * (md / bc1) / (std::sqrt(vd / bc2) + eps);
  EXPECT_NEAR(m, md, 1e-6 * std::fabs(md));
  EXPECT_NEAR(v, vd, 1e-6 * std::fabs(vd));
  EXPECT_NEAR(w, wdd, 1e-6);
}

TEST(ElementRules, NormalOnTheHostIsCounterNormal) {
  for (uint64_t i = 0; i < 1000; ++i) {
    ASSERT_EQ(element::normal(5, 6, i, 0.02), static_cast<float>(0.02 * counter_normal(5, 6, i)));
  }
}

TEST(ElementRules, AdaLomoCoefficientsFollowTheFormula) {
  // RMS(θ) below 1e-3 takes 1e-3; RMS(u) below 1 takes 1.
  auto k = element::adalomo_coefs(0.01f, 0.1f, /*usq=*/4.0, /*wsq=*/1e-8, /*n=*/4);
  EXPECT_FLOAT_EQ(k.keep, static_cast<float>(1 - 0.01 * 1e-3 * 0.1));
  EXPECT_FLOAT_EQ(k.step, static_cast<float>(0.01 * 1e-3));
  k = element::adalomo_coefs(0.01f, 0.0f, /*usq=*/16.0, /*wsq=*/4.0, /*n=*/1);
  EXPECT_EQ(k.keep, 1.0f);
  EXPECT_FLOAT_EQ(k.step, static_cast<float>(0.01 * 2 / 4));
}

// ---- conversions ------------------------------------------------------------------------------

TEST(CudaUpdates, ToF32MatchesCpu) {
  LOMO_CUDA_OR_SKIP(gpu);
  Rig rig;
  for (StorageDtype t : {StorageDtype::F32, StorageDtype::BF16, StorageDtype::F16}) {
    for (int64_t n : kSizes) {
      std::vector<float> x = randn(n, 11, 2.0f);
      if (n > 3) x[1] = kInf, x[2] = kNaN, x[3] = 1e-6f;  // f16 subnormal
      TwinParam p(*gpu, rig.tracker, t, 1, n, x, 1);
      const int64_t begin = n > 1 ? 1 : 0, count = n - begin;
      std::vector<float> want(static_cast<size_t>(count));
      rig.cpu.to_f32(want.data(), p.host(), begin, count);
      GuardedDeviceArray<float> out(*gpu, rig.tracker, count);
      out.upload(std::vector<float>(static_cast<size_t>(count), kNaN));
      gpu->to_f32(out.data(), p.device(), begin, count);
      EXPECT_EQ(bit_mismatches(out.download(), want), std::vector<int64_t>{})
          << dtype_name(t) << " n=" << n;
    }
  }
}

TEST(CudaUpdates, ToBf16MatchesCpu) {
  LOMO_CUDA_OR_SKIP(gpu);
  Rig rig;
  for (int64_t n : kSizes) {
    std::vector<float> x = randn(n, 12, 5.0f);
    if (n > 4) x[1] = kInf, x[2] = -kInf, x[3] = kNaN, x[4] = FLT_MAX;
    GuardedDeviceArray<float> in(*gpu, rig.tracker, n);
    in.upload(x);
    std::vector<uint16_t> want(static_cast<size_t>(n));
    rig.cpu.to_bf16(want.data(), x.data(), n);
    GuardedDeviceArray<uint16_t> out(*gpu, rig.tracker, n);
    gpu->to_bf16(out.data(), in.data(), n);
    EXPECT_EQ(out.download(), want) << "n=" << n;
  }
}

TEST(CudaUpdates, StoreMatchesCpuBitForBit) {
  LOMO_CUDA_OR_SKIP(gpu);
  Rig rig;
  for (const Storage& s : kStorages) {
    for (int64_t n : kSizes) {
      const std::vector<float> w32 = randn(n, 13, 1.5f);
      TwinParam p(*gpu, rig.tracker, s.dtype, 1, n, std::vector<float>(w32.size(), 0.25f), 7);
      GuardedDeviceArray<float> src(*gpu, rig.tracker, n);
      src.upload(w32);
      const RoundingMode r{s.rounding, 2024, 5};
      rig.cpu.store(p.host(), w32.data(), r);
      gpu->store(p.device(), src.data(), r);
      EXPECT_EQ(bit_mismatches(p.device_values(), p.host_values()), std::vector<int64_t>{})
          << dtype_name(s.dtype) << (s.rounding == Rounding::Stochastic ? " SR" : "") << " n=" << n;
      EXPECT_EQ(bit_mismatches(src.download(), w32), std::vector<int64_t>{}) << "w32 was written";
    }
  }
  // fp32 stored from its own storage: nothing to do, nothing changes.
  const std::vector<float> x = randn(1000, 14, 1.0f);
  TwinParam p(*gpu, rig.tracker, StorageDtype::F32, 1, 1000, x, 1);
  gpu->store(p.device(), p.device().f32(), {});
  EXPECT_EQ(bit_mismatches(p.device_values(), x), std::vector<int64_t>{});
}

TEST(CudaUpdates, FillNormalMatchesCpuToTheLastBit) {
  LOMO_CUDA_OR_SKIP(gpu);
  Rig rig;
  for (int64_t n : kSizes) {
    std::vector<float> want(static_cast<size_t>(n));
    rig.cpu.fill_normal(want.data(), n, 31, 4, 0.02, 1000003);
    GuardedDeviceArray<float> out(*gpu, rig.tracker, n);
    gpu->fill_normal(out.data(), n, 31, 4, 0.02, 1000003);  // a piece far into the stream
    const std::vector<float> got = out.download();
    int64_t differ = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      // fp64 log/cospi on the device vs log/cos on the host: the fp32 result may move one ulp.
      ASSERT_NEAR(got[i], want[i], 2 * std::fabs(want[i]) * FLT_EPSILON + 1e-14) << "element " << i;
      differ += got[i] != want[i];
    }
    EXPECT_LE(differ, n / 100 + 1) << "n=" << n << ": too many last-bit differences";
  }
}

// ---- gradient checks ----------------------------------------------------------------------------

TEST(CudaUpdates, ClipByValueMatchesCpu) {
  LOMO_CUDA_OR_SKIP(gpu);
  Rig rig;
  for (int64_t n : kSizes) {
    std::vector<float> g = randn(n, 21, 1.0f);
    if (n > 3) g[0] = kNaN, g[1] = kInf, g[2] = -kInf;
    for (float v : {0.5f, 0.0f, -1.0f}) {
      GuardedDeviceArray<float> d(*gpu, rig.tracker, n);
      d.upload(g);
      std::vector<float> want = g;
      rig.cpu.clip_by_value(want.data(), n, v);
      gpu->clip_by_value(d.data(), n, v);
      EXPECT_EQ(bit_mismatches(d.download(), want), std::vector<int64_t>{})
          << "n=" << n << " v=" << v;
    }
  }
}

TEST(CudaUpdates, AllFiniteAndAnyBeyondMatchCpuOnNaNAndInf) {
  LOMO_CUDA_OR_SKIP(gpu);
  Rig rig;
  const float limit = 2.0f;
  for (int64_t n : kSizes) {
    const std::vector<float> clean = randn(n, 22, 0.5f);
    struct Case {
      int64_t at;
      float value;
    };
    std::vector<Case> cases = {{-1, 0},
                               {0, kNaN},
                               {n - 1, kInf},
                               {n / 2, -kInf},
                               {n / 3, limit},
                               {n / 3, -limit},
                               {n - 1, std::nextafter(limit, 3.0f)},
                               {0, -65504.0f * 2}};
    for (const Case& c : cases) {
      std::vector<float> g = clean;
      for (auto& x : g) x = std::clamp(x, -1.9f, 1.9f);
      if (c.at >= 0) g[static_cast<size_t>(c.at)] = c.value;
      GuardedDeviceArray<float> d(*gpu, rig.tracker, n);
      d.upload(g);
      const bool finite = rig.cpu.all_finite(g.data(), n);
      const bool beyond = rig.cpu.any_beyond(g.data(), n, limit);
      EXPECT_EQ(gpu->all_finite(d.data(), n), finite) << "n=" << n << " value " << c.value;
      EXPECT_EQ(gpu->any_beyond(d.data(), n, limit), beyond) << "n=" << n << " value " << c.value;
      EXPECT_EQ(finite, c.at < 0 || std::isfinite(c.value));
      EXPECT_EQ(beyond, c.at >= 0 && !(std::fabs(c.value) <= limit));
      EXPECT_EQ(bit_mismatches(d.download(), g), std::vector<int64_t>{});
    }
  }
}

TEST(CudaUpdates, SumSquaresMatchesCpuToFp64Rounding) {
  LOMO_CUDA_OR_SKIP(gpu);
  Rig rig;
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{1000}, int64_t{65537}, int64_t{3000001}}) {
    const std::vector<float> g = randn(n, 23, 0.1f);
    GuardedDeviceArray<float> d(*gpu, rig.tracker, n);
    if (n > 0) d.upload(g);
    const double want = rig.cpu.sum_squares(g.data(), n);
    const double got = gpu->sum_squares(d.data(), n);
    // Both sum the same fp64 terms (one fma each) in different orders: n·2^-53 relative at most.
    EXPECT_NEAR(got, want, 1e-15 * static_cast<double>(n + 1) * want) << "n=" << n;
    EXPECT_EQ(gpu->sum_squares(d.data(), n), got) << "the GPU's sum must be reproducible";
  }
}

TEST(CudaUpdates, CheckGradientRowsMatchTheCpu) {
  LOMO_CUDA_OR_SKIP(gpu);
  Rig rig;
  // Rows of one table, written by queued checks and read once, as GradientChecks does.
  struct Case {
    int64_t n;
    float clip, limit;
    float poison;  // written at element n/2 (0: none)
  };
  const Case cases[] = {{0, 0, INFINITY, 0},        {1, 0, INFINITY, 0},
                        {65537, 0.05f, INFINITY, 0}, {3000001, 0, 0.25f, 0},
                        {1000, 0.05f, 0.25f, 7.0f},  {1000, 0, INFINITY, NAN},
                        {1000, 0.1f, INFINITY, INFINITY}, {1000, 0, 65504.0f, -INFINITY}};
  const size_t rows = std::size(cases);
  GuardedDeviceArray<GradientCheck> table(*gpu, rig.tracker, static_cast<int64_t>(rows));
  std::vector<GradientCheck> want(rows);
  std::vector<std::vector<float>> want_g(rows);
  std::vector<std::unique_ptr<GuardedDeviceArray<float>>> dg;
  for (size_t r = 0; r < rows; ++r) {
    const Case& c = cases[r];
    std::vector<float> g = randn(c.n, static_cast<uint32_t>(41 + r), 0.1f);
    if (c.poison != 0) g[static_cast<size_t>(c.n / 2)] = c.poison;
    dg.push_back(std::make_unique<GuardedDeviceArray<float>>(*gpu, rig.tracker, c.n));
    if (c.n > 0) dg.back()->upload(g);
    rig.cpu.check_gradient(g.data(), c.n, c.clip, c.limit, &want[r]);
    want_g[r] = g;
    gpu->check_gradient(dg.back()->data(), c.n, c.clip, c.limit, table.data() + r);
  }
  const std::vector<GradientCheck> got = table.download();
  for (size_t r = 0; r < rows; ++r) {
    SCOPED_TRACE("case " + std::to_string(r));
    EXPECT_EQ(got[r].beyond, want[r].beyond);
    if (std::isfinite(want[r].sum_squares)) {
      EXPECT_NEAR(got[r].sum_squares, want[r].sum_squares,
                  1e-15 * static_cast<double>(cases[r].n + 1) * want[r].sum_squares);
    } else {
      EXPECT_FALSE(std::isfinite(got[r].sum_squares)) << got[r].sum_squares;
    }
    EXPECT_EQ(bit_mismatches(dg[r]->download(), want_g[r]), std::vector<int64_t>{})
        << "the clamped gradient";
  }
}

// ---- updates ------------------------------------------------------------------------------------

TEST(CudaUpdates, SgdUpdateMatchesCpuBitForBit) {
  LOMO_CUDA_OR_SKIP(gpu);
  Rig rig;
  for (const Storage& s : kStorages) {
    for (int64_t n : kSizes) {
      const std::vector<float> g = randn(n, 31, 0.3f);
      TwinParam p(*gpu, rig.tracker, s.dtype, 1, n, randn(n, 32, 1.0f), 3);
      GuardedDeviceArray<float> dg(*gpu, rig.tracker, n);
      dg.upload(g);
      const SgdStep st{0.9993f, 0.0137f, {s.rounding, 77, 12}};
      for (int step = 0; step < 2; ++step) {  // the second from the first's rounded values
        rig.cpu.sgd_update(p.host(), g.data(), st);
        gpu->sgd_update(p.device(), dg.data(), st);
      }
      EXPECT_EQ(bit_mismatches(p.device_values(), p.host_values()), std::vector<int64_t>{})
          << dtype_name(s.dtype) << (s.rounding == Rounding::Stochastic ? " SR" : "") << " n=" << n;
      EXPECT_EQ(bit_mismatches(dg.download(), g), std::vector<int64_t>{}) << "g was written";
    }
  }
}

TEST(CudaUpdates, AdamWUpdateMatchesCpuBitForBit) {
  LOMO_CUDA_OR_SKIP(gpu);
  Rig rig;
  for (int64_t n : kSizes) {
    const std::vector<float> g = randn(n, 41, 0.3f);
    TwinParam p(*gpu, rig.tracker, StorageDtype::F32, 1, n, randn(n, 42, 1.0f), 2);
    std::vector<float> m = randn(n, 43, 0.01f), v(static_cast<size_t>(n));
    for (size_t i = 0; i < v.size(); ++i) v[i] = m[i] * m[i] * 3.0f;
    GuardedDeviceArray<float> dg(*gpu, rig.tracker, n), dm(*gpu, rig.tracker, n),
        dv(*gpu, rig.tracker, n);
    dg.upload(g);
    dm.upload(m);
    dv.upload(v);
    AdamWStep st;
    st.lr = 1e-3f;
    st.weight_decay = 0.1f;
    st.grad_coef = 0.75f;
    for (int t = 1; t <= 2; ++t) {
      st.bias_correction1 = 1.0f - std::pow(st.beta1, static_cast<float>(t));
      st.bias_correction2 = 1.0f - std::pow(st.beta2, static_cast<float>(t));
      rig.cpu.adamw_update(p.host(), g.data(), m.data(), v.data(), st);
      gpu->adamw_update(p.device(), dg.data(), dm.data(), dv.data(), st);
    }
    EXPECT_EQ(bit_mismatches(p.device_values(), p.host_values()), std::vector<int64_t>{})
        << "n=" << n;
    EXPECT_EQ(bit_mismatches(dm.download(), m), std::vector<int64_t>{}) << "m, n=" << n;
    EXPECT_EQ(bit_mismatches(dv.download(), v), std::vector<int64_t>{}) << "v, n=" << n;
  }
  TwinParam bf(*gpu, rig.tracker, StorageDtype::BF16, 1, 8, std::vector<float>(8, 1.0f), 2);
  GuardedDeviceArray<float> z(*gpu, rig.tracker, 8);
  // The CPU asserts (an internal error); the GPU says which parameter. Either refuses.
  EXPECT_ANY_THROW(gpu->adamw_update(bf.device(), z.data(), z.data(), z.data(), AdamWStep{}));
}

// |a − b| ≤ rel·|b| + abs for every element; the first offender is reported.
void expect_close(const std::vector<float>& a, const std::vector<float>& b, double rel, double abs,
                  const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_LE(std::fabs(double(a[i]) - double(b[i])), rel * std::fabs(double(b[i])) + abs)
        << what << " element " << i << ": gpu " << a[i] << ", cpu " << b[i];
  }
}

// AdaLomo matches to rounding: r, Σr, Σu² and Σθ² are fp64 sums in another order, so r, u, keep
// and step may differ in their last fp32 bit; s (summed down each column in the CPU's order) is
// exact. A 16-bit parameter may then round to the neighbouring code: one 16-bit ulp.
TEST(CudaUpdates, AdaLomoUpdateMatchesCpuToRounding) {
  LOMO_CUDA_OR_SKIP(gpu);
  Rig rig;
  struct Shape {
    int64_t rows, cols;
    bool matrix;
  };
  const Shape shapes[] = {
      {37, 29, true}, {1, 1, false}, {1, 1000, false}, {1, 65537, false}, {1, 1, true}};
  for (const Shape& sh : shapes) {
    for (const Storage& s : kStorages) {
      const int64_t n = sh.rows * sh.cols;
      const int64_t nr = sh.matrix ? sh.rows : n, nc = sh.matrix ? sh.cols : 0;
      TwinParam p(*gpu, rig.tracker, s.dtype, sh.rows, sh.cols, randn(n, 51, 0.05f), 4);
      std::vector<float> row(static_cast<size_t>(nr), 0.0f), col(static_cast<size_t>(nc), 0.0f);
      GuardedDeviceArray<float> drow(*gpu, rig.tracker, nr), dcol(*gpu, rig.tracker, nc),
          dg(*gpu, rig.tracker, n);
      drow.upload(row);
      if (nc > 0) dcol.upload(col);
      const std::string what = std::string(dtype_name(s.dtype)) +
                               (s.rounding == Rounding::Stochastic ? " SR " : " ") +
                               std::to_string(sh.rows) + "x" + std::to_string(sh.cols) +
                               (sh.matrix ? " matrix" : " vector");
      for (int t = 1; t <= 2; ++t) {
        std::vector<float> g = randn(n, 52 + static_cast<uint32_t>(t), 0.2f);
        dg.upload(g);
        AdaLomoStep st;
        st.beta = 1.0 - std::pow(static_cast<double>(t), -0.8);
        st.grad_coef = t == 1 ? 0.8f : 1.0f;
        st.lr = 0.01f;
        st.weight_decay = 0.1f;
        st.rounding = {s.rounding, 9, t};
        rig.cpu.adalomo_update(p.host(), g.data(), row.data(), sh.matrix ? col.data() : nullptr,
                               st);
        gpu->adalomo_update(p.device(), dg.data(), drow.data(), sh.matrix ? dcol.data() : nullptr,
                            st);
        const std::string at = what + " step " + std::to_string(t);
        expect_close(drow.download(), row, 4e-7, 0, at + " r");
        if (sh.matrix) {
          EXPECT_EQ(bit_mismatches(dcol.download(), col), std::vector<int64_t>{}) << at << " s";
        }
        expect_close(dg.download(), g, 2e-6, 1e-12, at + " u");
        // One ulp of the format, relative; absolute near 0, where w·keep and step·u cancel
        // (fp16: its subnormal spacing 2^-24).
        const double ulp = s.dtype == StorageDtype::F32    ? 1e-6
                           : s.dtype == StorageDtype::BF16 ? 0x1.0p-7
                                                           : 0x1.0p-10;
        const double tiny = s.dtype == StorageDtype::F16 ? 0x1.0p-24 : 1e-9;
        expect_close(p.device_values(), p.host_values(), ulp, tiny, at + " theta");
      }
    }
  }
}

}  // namespace
}  // namespace lomo::test
