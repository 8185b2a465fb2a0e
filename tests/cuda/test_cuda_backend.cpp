// The CUDA backend's device selection and memory, on any machine: without a GPU the errors are
// checked and the device tests skip with the reason.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "cuda_test_util.h"

namespace lomo::test {
namespace {

TEST(CudaDevice, BadDeviceNamesAreOneLineErrors) {
  for (const char* name : {"cuda:", "cuda:x", "cuda:-1", "cuda:123", "gpu"}) {
    try {
      make_backend({.device = name});
      ADD_FAILURE() << name << " was accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("--device"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

TEST(CudaDevice, NoGpuIsAOneLineErrorNamingTheWayOut) {
  std::string reason;
  auto gpu = try_cuda_backend(reason);
  if (gpu) GTEST_SKIP() << "a GPU is present: " << gpu->name();
  EXPECT_NE(reason.find("--device cpu"), std::string::npos) << reason;
  EXPECT_EQ(reason.find('\n'), std::string::npos) << reason;
}

TEST(CudaDevice, CopiesRoundTripAndAllocationsAreZeroedAndTracked) {
  LOMO_CUDA_OR_SKIP(gpu);
  MemoryTracker tracker;
  const Device dev = gpu->allocator().device();
  {
    GuardedDeviceArray<float> a(*gpu, tracker, 1001);
    EXPECT_GT(tracker.current(MemCategory::Workspace, dev), 1001 * sizeof(float));
    std::vector<float> x(1001);
    for (size_t i = 0; i < x.size(); ++i) x[i] = 0.5f * static_cast<float>(i) - 3.0f;
    a.upload(x);
    EXPECT_EQ(a.download(), x);
    Buffer z(gpu->allocator(), tracker, MemCategory::Activations, 4096);
    std::vector<uint8_t> host(4096, 1);
    gpu->copy_to_host(host.data(), z.as<uint8_t>(), host.size());
    EXPECT_EQ(host, std::vector<uint8_t>(4096, 0));
  }
  EXPECT_EQ(tracker.current(MemCategory::Workspace, dev), 0u);
  EXPECT_EQ(tracker.current_total(), 0u);
}

TEST(CudaDevice, ProfileEventsTimeTheQueuedWorkNotItsLaunch) {
  LOMO_CUDA_OR_SKIP(gpu);
  MemoryTracker tracker;
  std::unique_ptr<PhaseClock> clock = gpu->make_phase_clock();
  ASSERT_NE(clock, nullptr) << "a GPU run must time phases on the device";
  constexpr int64_t n = int64_t{1} << 28;  // 1 GiB of fp32: milliseconds of writes
  Buffer big(gpu->allocator(), tracker, MemCategory::Workspace, n * 4);
  for (int step = 0; step < 2; ++step) {  // the second step reuses the first one's events
    const int a = clock->mark();
    for (int i = 0; i < 4; ++i) gpu->fill(big.f32(), 1.0f + i, n);
    const int b = clock->mark();
    const int c = clock->mark();
    EXPECT_EQ(a, 0);
    const double work = clock->elapsed(a, b), nothing = clock->elapsed(b, c);
    EXPECT_GT(work, 1e-4) << "4 GiB of writes timed as " << work << " s";
    EXPECT_LT(nothing, work / 10) << "an empty interval timed as " << nothing << " s";
    clock->reset();
  }
}

}  // namespace
}  // namespace lomo::test
