// Data parallelism's gradient sink: wraps the run's sink (LOMO, AdaLomo, the norm pass, the
// stored gradients of SGD/AdamW) and sums each gradient over the ranks the moment backward
// completes it, before the wrapped sink updates or measures anything, so every rank applies the
// identical update. Each rank's gradient is already of its share's loss over the global batch's
// loss tokens (Batch::loss_denominator), so the sum is the global batch's gradient.
//
// The zero-buffer update cannot be summed (its gradient never exists): this sink asks for none,
// and every gradient is materialised in the wrapped sink's buffer; the memory planner counts it
// (ZeroBufferInputs::data_parallel).
#pragma once

#include "dist/communicator.h"
#include "model/grad_sink.h"

namespace lomo {

class ReducingSink : public GradSink {
 public:
  // `comm` reaches buffers in the backend's memory (World::for_backend).
  // seconds (optional): the time spent in the sums is added to it (for NCCL, the time to queue
  // them: the GPU runs them later, in order).
  ReducingSink(GradSink& inner, Communicator& comm, double* seconds = nullptr)
      : inner_(inner), comm_(comm), seconds_(seconds) {}
  bool trains(const Param& p) const override { return inner_.trains(p); }
  float* gradient_buffer(const Param& p) override { return inner_.gradient_buffer(p); }
  void consume(Param& p, float* grad) override;
  // std::nullopt: the gradient must exist to be summed.

 private:
  GradSink& inner_;
  Communicator& comm_;
  double* seconds_;
};

}  // namespace lomo
