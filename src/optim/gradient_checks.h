// The gradient checks of one backward pass — design §2 rule 8's non-finite test, fp16's overflow
// test (rule 7) and the clipping norm's Σg² — with one host synchronisation per pass instead of
// one per tensor: each check queues Backend::check_gradient, which writes the tensor's row of a
// table in the backend's memory (a GPU's), and read() copies the table back once the pass is
// done. The first bad tensor is still named: the rows keep the order the pass checked them in.
//
// What the deferral changes: an update sink goes on updating the tensors after a bad one before
// the pass ends and the trainer stops the run. Rule 8 allows it (the run stops, nothing is saved,
// the last checkpoint on disk is intact); the fp16 overflow pass updates nothing either way.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/memory.h"
#include "model/params.h"
#include "ops/backend.h"

namespace lomo {

class GradientChecks {
 public:
  // A table for up to `max_tensors` checks a pass (16 bytes each, tracked as workspace).
  GradientChecks(size_t max_tensors, MemoryTracker& tracker, Backend& backend);
  // A new pass: the rows of the last one are forgotten.
  void begin();
  // Queues the check of p's gradient g(p.numel()): clamps g to [−clip, clip] (clip ≤ 0: not) and
  // notes Σg² of the result, and whether some raw |g_i| > limit (not finite: not tested).
  void check(const Param& p, float* g, float clip, float limit);

  struct Result {
    double sum_squares = 0;  // over the checked tensors, added in check order
    std::string first_bad;   // the first tensor with a non-finite Σg² or beyond the limit; ""
  };
  // Waits for the pass's checks (one copy from the backend) and sums them up.
  Result read();
  // Bytes of the table for max_tensors (the memory planner's term).
  static size_t table_bytes(size_t max_tensors) { return max_tensors * sizeof(GradientCheck); }

 private:
  Backend& backend_;
  Buffer table_;                    // (max_tensors) GradientCheck, in the backend's memory
  std::vector<GradientCheck> rows_;  // read()'s host copy
  std::vector<std::string> names_;  // the checked tensors, in check order
  size_t used_ = 0;
};

}  // namespace lomo
