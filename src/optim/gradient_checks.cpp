#include "optim/gradient_checks.h"

#include <cmath>

#include "core/error.h"

namespace lomo {

GradientChecks::GradientChecks(size_t max_tensors, MemoryTracker& tracker, Backend& backend)
    : backend_(backend),
      table_(backend.allocator(), tracker, MemCategory::Workspace, table_bytes(max_tensors)),
      rows_(max_tensors),
      names_(max_tensors) {}

void GradientChecks::begin() {
  used_ = 0;
}

void GradientChecks::check(const Param& p, float* g, float clip, float limit) {
  LOMO_ASSERT(used_ < rows_.size(), "more gradient checks in one pass than " +
                                        std::to_string(rows_.size()) + " tensors (at " +
                                        p.name + ")");
  backend_.check_gradient(g, p.numel(), clip, limit, table_.as<GradientCheck>() + used_);
  names_[used_] = p.name;
  ++used_;
}

GradientChecks::Result GradientChecks::read() {
  Result r;
  if (used_ == 0) return r;
  backend_.copy_to_host(rows_.data(), table_.as<GradientCheck>(), used_ * sizeof(GradientCheck));
  for (size_t i = 0; i < used_; ++i) {
    const GradientCheck& c = rows_[i];
    if (r.first_bad.empty() && (c.beyond != 0 || !std::isfinite(c.sum_squares))) {
      r.first_bad = names_[i];
    }
    r.sum_squares += c.sum_squares;
  }
  return r;
}

}  // namespace lomo
