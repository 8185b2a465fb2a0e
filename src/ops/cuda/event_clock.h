// --profile's clock on a GPU (core/profile.h PhaseClock): each mark records a CUDA event on the
// backend's stream, so a phase's interval is the time the GPU spent between the work queued
// before its start and the work queued before its end — its own kernels, not their launches —
// and a profiled step queues work as an unprofiled one does. The intervals are resolved once,
// when the step ends (cudaEventElapsedTime, ~0.5 µs resolution). Events are made as a step
// first needs them and reused by every later step.
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include "core/profile.h"

namespace lomo::cuda {

class EventClock final : public PhaseClock {
 public:
  explicit EventClock(cudaStream_t stream) : stream_(stream) {}
  ~EventClock() override;
  EventClock(const EventClock&) = delete;
  EventClock& operator=(const EventClock&) = delete;

  int mark() override;
  double elapsed(int a, int b) override;
  void reset() override { used_ = 0; }

 private:
  cudaStream_t stream_;
  std::vector<cudaEvent_t> events_;  // the first used_ are this step's marks, in order
  size_t used_ = 0;
};

}  // namespace lomo::cuda
