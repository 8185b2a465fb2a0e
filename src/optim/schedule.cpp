#include "optim/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lomo {

LrSchedule parse_lr_schedule(const std::string& s) {
  if (s == "constant") return LrSchedule::Constant;
  if (s == "linear") return LrSchedule::Linear;
  if (s == "cosine") return LrSchedule::Cosine;
  throw Error("--lr-schedule: unknown schedule \"" + s + "\" (constant, linear, cosine)");
}

int64_t Schedule::warmup_steps() const {
  const auto w = static_cast<int64_t>(std::ceil(warmup_ratio * static_cast<double>(total_steps)));
  return std::max<int64_t>(0, std::min(w, total_steps - 1));
}

double Schedule::at(int64_t step) const {
  const int64_t w = warmup_steps();
  if (step < w)
    return lr * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, w));
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - w));
  const double progress = static_cast<double>(step - w) / span;
  switch (kind) {
    case LrSchedule::Constant:
      return lr;
    case LrSchedule::Linear:
      return lr * std::max(0.0, 1.0 - progress);
    case LrSchedule::Cosine:
      return lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  }
  return lr;
}

}  // namespace lomo
