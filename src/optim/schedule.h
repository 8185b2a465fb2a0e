// Learning-rate schedules, as transformers' get_*_schedule_with_warmup (step counted from 0):
//   warm-up:  lr·s/W for s < W, W = min(ceil(warmup_ratio · total), total − 1)
//   (transformers has no "− 1": there a one-step run with any warm-up trains at lr 0, and a
//   warm-up ratio of 1 never reaches the peak; here the last step always does)
//   constant: lr;  linear: lr·(total − s)/(total − W);  cosine: lr·½(1 + cos(π·(s − W)/(total −
//   W)))
#pragma once

#include <cstdint>
#include <string>

namespace lomo {

enum class LrSchedule { Constant, Linear, Cosine };

LrSchedule parse_lr_schedule(const std::string& s);  // throws lomo::Error on unknown names

struct Schedule {
  LrSchedule kind = LrSchedule::Constant;
  double lr = 0;
  double warmup_ratio = 0;
  int64_t total_steps = 1;

  int64_t warmup_steps() const;
  double at(int64_t step) const;  // step in [0, total_steps)
};

}  // namespace lomo
