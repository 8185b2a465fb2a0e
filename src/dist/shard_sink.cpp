#include "dist/shard_sink.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace lomo {

namespace {

int64_t padded_elems(const Param& p, int ranks) {
  return ParamShards::shard_elems(p.numel(), ranks) * ranks;
}

}  // namespace

ShardGradients::ShardGradients(const ModelParams& params, int held_id, int ranks,
                               MemoryTracker& tracker, Backend& backend)
    : held_id_(held_id), ranks_(ranks) {
  int64_t largest_other = 0;
  for (const Param& p : params.all()) {
    if (p.id == held_id) {
      held_ = Buffer(backend.allocator(), tracker, MemCategory::Gradients,
                     static_cast<size_t>(padded_elems(p, ranks)) * 4);
    } else {
      largest_other = std::max(largest_other, padded_elems(p, ranks));
    }
  }
  shared_ = Buffer(backend.allocator(), tracker, MemCategory::Gradients,
                   static_cast<size_t>(largest_other) * 4);
}

float* ShardGradients::buffer_for(const Param& p) {
  if (p.id == held_id_) return held_.f32();
  LOMO_ASSERT(static_cast<size_t>(padded_elems(p, ranks_)) * 4 <= shared_.bytes(),
              p.name + " needs a larger sharded gradient buffer than was planned");
  return shared_.f32();
}

void ShardSink::consume(Param& p, float* grad) {
  const auto t0 = std::chrono::steady_clock::now();
  auto count_time = [&] {
    if (seconds_ != nullptr) {
      *seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
  };
  const int64_t n = p.numel();
  if (reduce_ == Reduce::Scatter) {
    Param& shard = shards_.shard(p.id);
    const int64_t s = shard.numel();
    // The padding after the tensor's n elements holds whatever an earlier tensor left in the
    // shared buffer: zero, so that the last rank's padding stays zero.
    if (s * comm_.size() > n) backend_.fill(grad + n, 0.0f, s * comm_.size() - n);
    float* out = inner_.gradient_buffer(shard);  // (s)
    comm_.reduce_scatter_sum(grad, out, s);
    count_time();
    inner_.consume(shard, out);
    return;
  }
  comm_.all_reduce_sum(grad, n);  // (n), in place
  count_time();
  inner_.consume(p, grad);
  if (reduce_ == Reduce::UpdateWhole) {
    // Elements [first, first + s) of the updated whole tensor (N·s elements) are the shard.
    Param& shard = shards_.shard(p.id);
    const size_t e = dtype_bytes(p.dtype);
    backend_.copy(shard.data.as<void>(),
                  p.data.as<unsigned char>() + static_cast<size_t>(shard.first) * e,
                  static_cast<size_t>(shard.numel()) * e);
  }
}

}  // namespace lomo
