#include "ops/cuda/event_clock.h"

#include "core/error.h"
#include "ops/cuda/cuda_util.h"

namespace lomo::cuda {

EventClock::~EventClock() {
  for (cudaEvent_t e : events_) cudaEventDestroy(e);  // no throwing from a destructor
}

int EventClock::mark() {
  if (used_ == events_.size()) {
    cudaEvent_t e = nullptr;
    check(cudaEventCreate(&e), "creating a CUDA event for --profile");
    events_.push_back(e);
  }
  check(cudaEventRecord(events_[used_], stream_), "recording a CUDA event for --profile");
  return static_cast<int>(used_++);
}

double EventClock::elapsed(int a, int b) {
  LOMO_ASSERT(a >= 0 && b >= a && static_cast<size_t>(b) < used_,
              "a profile interval between marks this step did not make");
  // Event b is recorded after a on the same stream: once b has completed, so has a.
  check(cudaEventSynchronize(events_[static_cast<size_t>(b)]),
        "waiting for the GPU to reach the end of a profiled phase");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, events_[static_cast<size_t>(a)], events_[static_cast<size_t>(b)]),
        "reading a profiled phase's CUDA events");
  return static_cast<double>(ms) / 1000.0;
}

}  // namespace lomo::cuda
