#include "ops/lm_head.h"

#include <algorithm>

namespace lomo {

LmHeadTiles lm_head_tiles(int64_t V, int64_t N, bool one_pass, bool all_rows) {
  LmHeadTiles t;
  t.rows = std::max<int64_t>(1, all_rows && !one_pass ? N : std::min<int64_t>(N, 4096));
  const int64_t cols = std::max<int64_t>(64, (int64_t{1} << 20) / t.rows) / 16 * 16;
  t.cols = std::max<int64_t>(1, std::min(V, cols));
  if (one_pass) {
    // Equal tiles of at most kOnePassTileElems logits (at least 16 rows): dW's product has
    // K = rows, and dW is read and written once per tile.
    const int64_t most = std::max<int64_t>(16, kOnePassTileElems / std::max<int64_t>(1, V));
    const int64_t n_tiles = (N + most - 1) / most;
    t.rows = std::max<int64_t>(1, std::min(N, (N + n_tiles - 1) / n_tiles));
    t.one_pass = true;
  }
  return t;
}

}  // namespace lomo
