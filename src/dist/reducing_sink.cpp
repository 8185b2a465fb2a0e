#include "dist/reducing_sink.h"

namespace lomo {

void ReducingSink::consume(Param& p, float* grad) {
  comm_.all_reduce_sum(grad, p.numel());  // (numel), in place
  inner_.consume(p, grad);
}

}  // namespace lomo
