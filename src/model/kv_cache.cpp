#include "model/kv_cache.h"

#include "core/error.h"

namespace lomo {

size_t KvCache::bytes(const ModelConfig& c, int64_t capacity) {
  return static_cast<size_t>(c.n_layer * 2 * capacity * c.n_kv * c.head_dim) * sizeof(float);
}

KvCache::KvCache(const ModelConfig& c, int64_t capacity, Backend& backend, MemoryTracker& tracker)
    : capacity_(capacity),
      row_(c.n_kv * c.head_dim),
      buf_(backend.allocator(), tracker, MemCategory::Activations, bytes(c, capacity)) {
  LOMO_ASSERT(capacity > 0, "KV cache of no positions");
}

void KvCache::set_length(int64_t n) {
  LOMO_ASSERT(n >= 0 && n <= capacity_, "KV cache length beyond its capacity");
  length_ = n;
}

}  // namespace lomo
