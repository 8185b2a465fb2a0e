#include "dist/communicator.h"

#include <cstring>

namespace lomo {

// One rank: the share and the gather are the buffer itself (host memory: memmove).
void LocalCommunicator::reduce_scatter_sum(const float* in, float* out, int64_t n) {
  if (in != out) std::memmove(out, in, sizeof(float) * static_cast<size_t>(n));
}

void LocalCommunicator::all_gather(const float* in, float* out, int64_t n) {
  if (in != out) std::memmove(out, in, sizeof(float) * static_cast<size_t>(n));
}

}  // namespace lomo
