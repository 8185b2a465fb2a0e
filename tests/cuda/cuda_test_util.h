// What the CUDA tests share: the backend or a visible skip, and device arrays with guard values
// around them so that a kernel writing out of bounds is caught.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/memory.h"
#include "ops/backend.h"
#include "ops/cpu/cpu_backend.h"

namespace lomo::test {

// The CUDA backend, or nullptr with `reason` saying why there is none (no GPU, no driver).
// bf16_products: attention through cuDNN where it takes the shape (BackendOptions).
inline std::unique_ptr<Backend> try_cuda_backend(std::string& reason, bool bf16_products = false) {
  try {
    return make_backend({.device = "cuda", .bf16_products = bf16_products});
  } catch (const Error& e) {
    reason = e.what();
    return nullptr;
  }
}

// In a TEST body: `LOMO_CUDA_OR_SKIP(gpu);` declares `std::unique_ptr<Backend> gpu`, or skips
// the test printing the reason.
#define LOMO_CUDA_OR_SKIP(var)                                  \
  std::string var##_skip_reason;                                \
  auto var = ::lomo::test::try_cuda_backend(var##_skip_reason); \
  if (!var) GTEST_SKIP() << "no CUDA GPU: " << var##_skip_reason

// A device array of n elements of T with kGuard guard elements on each side, filled with a
// guard pattern that kernels must leave alone.
template <class T>
class GuardedDeviceArray {
 public:
  static constexpr int64_t kGuard = 64;
  GuardedDeviceArray(Backend& b, MemoryTracker& tracker, int64_t n)
      : b_(b),
        n_(n),
        buf_(b.allocator(), tracker, MemCategory::Workspace,
             sizeof(T) * static_cast<size_t>(n + 2 * kGuard)) {
    std::vector<T> all(static_cast<size_t>(n + 2 * kGuard));
    for (auto& x : all) std::memset(&x, 0x7d, sizeof(T));
    b_.copy_to_device(buf_.as<T>(), all.data(), sizeof(T) * all.size());
  }
  T* data() { return buf_.as<T>() + kGuard; }
  int64_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    b_.copy_to_device(data(), host.data(), sizeof(T) * static_cast<size_t>(n_));
  }
  // The array's contents; fails the test if a guard element changed.
  std::vector<T> download() {
    std::vector<T> all(static_cast<size_t>(n_ + 2 * kGuard));
    b_.copy_to_host(all.data(), buf_.as<T>(), sizeof(T) * all.size());
    T guard;
    std::memset(&guard, 0x7d, sizeof(T));
    for (int64_t i = 0; i < kGuard; ++i) {
      EXPECT_EQ(0, std::memcmp(&all[static_cast<size_t>(i)], &guard, sizeof(T)))
          << "guard element " << i << " before the array was overwritten";
      EXPECT_EQ(0, std::memcmp(&all[static_cast<size_t>(kGuard + n_ + i)], &guard, sizeof(T)))
          << "guard element " << i << " after the array was overwritten";
    }
    return {all.begin() + kGuard, all.begin() + kGuard + n_};
  }

 private:
  Backend& b_;
  int64_t n_;
  Buffer buf_;
};

// max |a − b| / max |b|; infinite when either holds a non-finite value (NaN must not hide).
inline double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double err = 0, scale = 1e-30;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    err = std::max(err, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return err / scale;
}

// Attention's padding rule: rows t ≥ lengths[b] of out and dq (B, T, n_head, hd) and of dk, dv
// (B, T, n_kv, hd) are exactly 0.
inline void expect_padding_rows_zero(const std::vector<float>& out, const std::vector<float>& dq,
                                     const std::vector<float>& dk, const std::vector<float>& dv,
                                     const std::vector<int32_t>& lengths, int64_t T, int64_t n_head,
                                     int64_t n_kv, int64_t hd) {
  for (size_t b = 0; b < lengths.size(); ++b) {
    const auto bb = static_cast<int64_t>(b);
    for (int64_t t = lengths[b]; t < T; ++t) {
      for (int64_t x = 0; x < n_head * hd; ++x) {
        const size_t i = static_cast<size_t>((bb * T + t) * n_head * hd + x);
        ASSERT_EQ(out[i], 0.0f) << "b " << b << " t " << t;
        ASSERT_EQ(dq[i], 0.0f) << "b " << b << " t " << t;
      }
      for (int64_t x = 0; x < n_kv * hd; ++x) {
        const size_t i = static_cast<size_t>((bb * T + t) * n_kv * hd + x);
        ASSERT_EQ(dk[i], 0.0f) << "b " << b << " t " << t;
        ASSERT_EQ(dv[i], 0.0f) << "b " << b << " t " << t;
      }
    }
  }
}

}  // namespace lomo::test
