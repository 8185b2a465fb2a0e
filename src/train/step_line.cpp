#include "train/step_line.h"

#include <cstdio>

#include "core/progress.h"

namespace lomo {

std::string step_line(const StepLine& s) {
  char buf[320];
  const double pct = s.total > 0 ? 100.0 * static_cast<double>(s.step) / s.total : 0.0;
  int n = std::snprintf(buf, sizeof buf,
                        "step %lld/%lld  loss %.4f  lr %.3e  tok/s %.0f  %.0f%%  elapsed %s  "
                        "ETA %s  mem %.2f GiB",
                        static_cast<long long>(s.step), static_cast<long long>(s.total), s.loss,
                        s.lr, s.tokens_per_s, pct, format_duration(s.elapsed_s).c_str(),
                        format_duration(s.eta_s).c_str(),
                        static_cast<double>(s.rss_bytes) / (1024.0 * 1024 * 1024));
  std::string line(buf, static_cast<size_t>(n));
  if (s.grad_norm >= 0) {
    std::snprintf(buf, sizeof buf, "  grad_norm %.4f", s.grad_norm);
    line += buf;
  }
  if (s.loss_scale > 0) {
    std::snprintf(buf, sizeof buf, "  loss_scale %g", s.loss_scale);
    line += buf;
  }
  if (s.skipped) line += "  skipped: gradient overflow, nothing updated, loss scale halved";
  return line;
}

}  // namespace lomo
