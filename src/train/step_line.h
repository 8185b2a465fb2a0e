// The line `lomo train` shows for each step: the same fields on a terminal (one live line) and
// in a pipe or file (one line per step), so logs and screens say the same thing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lomo {

struct StepLine {
  int64_t step = 0, total = 0;  // steps done (1-based), of the run's total
  double loss = 0, lr = 0, tokens_per_s = 0;
  double elapsed_s = 0;  // since the first step of this process
  double eta_s = 0;      // what remains at this run's mean step time (evaluations included)
  size_t rss_bytes = 0;  // the process's resident memory now
  double grad_norm = -1;   // < 0: not computed
  double loss_scale = 0;   // 0: not fp16
  bool skipped = false;    // fp16 overflow: nothing updated
};

// "step 3/10  loss 2.3456  lr 1.000e-04  tok/s 850  30%  elapsed 0:45  ETA 1:45  mem 0.62 GiB"
// then grad_norm, loss_scale and the skip notice when they apply. The leading
// "step N/M  loss X  lr Y  tok/s Z" is kept stable for scripts that read it.
std::string step_line(const StepLine& s);

}  // namespace lomo
