// The CUDA backend's device selection and memory, on any machine: without a GPU the errors are
// checked and the device tests skip with the reason.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace lomo::test
