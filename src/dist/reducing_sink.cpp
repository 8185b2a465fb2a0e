#include "dist/reducing_sink.h"

#include <chrono>

namespace lomo {

void ReducingSink::consume(Param& p, float* grad) {
  const auto t0 = std::chrono::steady_clock::now();
  comm_.all_reduce_sum(grad, p.numel());  // (numel), in place
  if (seconds_ != nullptr) {
    *seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  inner_.consume(p, grad);
}

}  // namespace lomo
