// Which sequences of a global batch each rank runs (data parallelism): contiguous shares, the
// first B mod N ranks one sequence more, so that the ranks together run the batch a single
// process would, and --batch-size means the same at any number of ranks.
#pragma once

#include <cstdint>

namespace lomo {

struct Share {
  int64_t begin = 0, count = 0;  // sequences [begin, begin + count) of the global batch
};

// Rank `rank` of `ranks`; batch ≥ ranks (each rank at least one sequence; the run checks).
Share batch_share(int64_t batch, int rank, int ranks);

}  // namespace lomo
