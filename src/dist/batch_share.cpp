#include "dist/batch_share.h"

#include <algorithm>

#include "core/error.h"

namespace lomo {

Share batch_share(int64_t batch, int rank, int ranks) {
  LOMO_ASSERT(ranks >= 1 && rank >= 0 && rank < ranks, "rank outside the world");
  const int64_t base = batch / ranks, extra = batch % ranks;
  Share s;
  s.begin = rank * base + std::min<int64_t>(rank, extra);
  s.count = base + (rank < extra ? 1 : 0);
  return s;
}

}  // namespace lomo
