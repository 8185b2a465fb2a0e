// The far backend (tests/far_backend.h) must really keep the host out: a host read of its memory
// outside an op dies by SIGSEGV, while the same memory is reachable through ops and copies.
#include <gtest/gtest.h>

#include <vector>

#include "far_backend.h"

namespace lomo::test {
namespace {

TEST(FarBackend, HostTouchOutsideAnOpFaultsAndOpsStillReachTheMemory) {
  FarBackend far;
  MemoryTracker tracker;
  Buffer buf(far.allocator(), tracker, MemCategory::Activations, 1000 * sizeof(float));
  EXPECT_EQ(tracker.current(MemCategory::Activations, far.allocator().device()),
            1000 * sizeof(float));
  const std::vector<float> x(1000, 2.5f);
  far.copy_to_device(buf.f32(), x.data(), x.size() * sizeof(float));
  far.add(buf.f32(), buf.f32(), 1000);  // 5.0 each
  std::vector<float> y(1000);
  far.copy_to_host(y.data(), buf.f32(), y.size() * sizeof(float));
  EXPECT_EQ(y, std::vector<float>(1000, 5.0f));
  EXPECT_GT(far.ops(), 0);
  volatile float* p = buf.f32();
  // Killed by SIGSEGV (under AddressSanitizer: its SEGV report, then exit 1).
  EXPECT_DEATH({ (void)p[17]; }, "");
  EXPECT_DEATH({ p[0] = 1.0f; }, "");
}

}  // namespace
}  // namespace lomo::test
