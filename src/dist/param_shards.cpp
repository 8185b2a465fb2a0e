#include "dist/param_shards.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace lomo {

int64_t ParamShards::shard_elems(int64_t numel, int ranks) {
  const int64_t per_rank = (numel + ranks - 1) / ranks;
  return (per_rank + 15) / 16 * 16;
}

ParamShards::ParamShards(ModelParams& params, Communicator& comm, MemoryTracker& tracker,
                         Backend& backend)
    : params_(params), comm_(comm), tracker_(tracker), backend_(backend) {
  const int N = comm.size(), r = comm.rank();
  shards_.reserve(params.all().size());
  for (const Param& p : params.all()) {
    LOMO_ASSERT(p.id == static_cast<int>(shards_.size()), "parameter ids are their positions");
    const int64_t s = shard_elems(p.numel(), N);
    Param q;
    q.id = p.id;
    q.name = p.name;
    q.shape = {s};
    q.role = p.role;
    q.layer = p.layer;
    q.group = p.group;
    q.dtype = p.dtype;
    q.first = r * s;
    shards_.push_back(std::move(q));
    layer_ids_[p.layer].push_back(p.id);
  }
}

void ParamShards::cut() {
  LOMO_ASSERT(!cut_, "ParamShards::cut twice");
  cut_ = true;
  std::vector<unsigned char> host;  // one shard, staged through the host
  for (Param& p : params_.all()) {
    Param& q = shard(p.id);
    const int64_t n = p.numel(), s = q.numel();
    const size_t e = dtype_bytes(p.dtype);
    q.data = Buffer(backend_.allocator(), tracker_, MemCategory::Parameters,
                    static_cast<size_t>(s) * e);
    // Elements [first, min(first + s, n)) of the tensor; the rest of the shard is zero padding.
    const int64_t valid = std::clamp<int64_t>(n - q.first, 0, s);
    host.assign(static_cast<size_t>(s) * e, 0);
    if (valid > 0) {
      // The whole tensor is in host memory as loaded (a GPU run cuts before moving anything to
      // the GPU), or in the backend's.
      const unsigned char* from = p.data.as<unsigned char>() + static_cast<size_t>(q.first) * e;
      if (p.on_host()) {
        std::memcpy(host.data(), from, static_cast<size_t>(valid) * e);
      } else {
        backend_.copy_to_host(host.data(), from, static_cast<size_t>(valid) * e);
      }
    }
    backend_.copy_to_device(q.data.as<void>(), host.data(), host.size());
    free_whole(p);
  }
}

void ParamShards::free_whole(Param& p) { p.data = Buffer(); }

void ParamShards::gather(Param& p) {
  const Param& q = shard(p.id);
  const int64_t s = q.numel();
  const size_t e = dtype_bytes(p.dtype);
  Buffer whole(backend_.allocator(), tracker_, MemCategory::Parameters,
               static_cast<size_t>(s * comm_.size()) * e);
  // The collectives move fp32 words: a 16-bit shard (s a multiple of 16) is s·e/4 of them, its
  // bits copied unchanged.
  const int64_t words = s * static_cast<int64_t>(e) / 4;
  comm_.all_gather(q.data.f32(), whole.f32(), words);
  p.data = std::move(whole);
}

void ParamShards::acquire(int64_t layer) {
  if (all_whole_) return;
  if (users_[layer]++ > 0) return;
  for (int id : layer_ids_[layer]) gather(params_.all()[static_cast<size_t>(id)]);
}

void ParamShards::release(int64_t layer) {
  if (all_whole_) return;
  int& users = users_[layer];
  LOMO_ASSERT(users > 0, "ParamShards::release of a layer not acquired");
  if (--users > 0) return;
  for (int id : layer_ids_[layer]) free_whole(params_.all()[static_cast<size_t>(id)]);
}

void ParamShards::gather_all() {
  if (all_whole_) return;
  for (Param& p : params_.all()) {
    if (p.data.empty()) gather(p);
  }
  all_whole_ = true;
}

void ParamShards::release_all() {
  if (!all_whole_) return;
  all_whole_ = false;
  for (Param& p : params_.all()) {
    if (users_[p.layer] == 0) free_whole(p);
  }
}

}  // namespace lomo
