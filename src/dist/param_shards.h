// Parameter sharding (`--parallel shard`, ZeRO-3 style; docs/distributed.md): each of N ranks
// keeps 1/N of every tensor, and the model's residency hook (model/residency.h) gathers a
// layer's tensors whole just before the layer is used and frees them after. Backward's
// gradients are reduce-scattered (dist/shard_sink.h), and each rank updates its shard only.
//
// Tensor p of n elements is cut into N shards of s = ⌈n / N⌉ elements, rounded up to 16 (so that
// a 16-bit shard is a whole number of fp32 words for the collectives, and every shard starts
// aligned): rank r holds elements [r·s, r·s + s), and the last rank's tail beyond n is padding,
// zero, never read by the model. A gathered tensor lives in one buffer of N·s elements,
// category Parameters, whose first n elements are the tensor.
//
// Memory of one rank (tests/test_data_parallel.cpp states it as a formula): Σ s·e over every
// tensor, plus, while in use, the gathered embedding, final norm and LM head (held through the
// whole training pass: the tied embedding's gradient completes at the end of backward) and one
// gathered block.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "core/memory.h"
#include "dist/communicator.h"
#include "model/params.h"
#include "model/residency.h"
#include "ops/backend.h"

namespace lomo {

class ParamShards : public Residency {
 public:
  // The shards' layout (shard() is valid, without data); `comm` reaches buffers in the backend's
  // memory (World::for_backend).
  ParamShards(ModelParams& params, Communicator& comm, MemoryTracker& tracker, Backend& backend);
  // Cuts every tensor of the params (whole, as loaded or resumed, identical on every rank; in host
  // memory or the backend's): keeps this rank's shard in the backend's memory and frees the whole
  // tensor, one tensor at a time. Once.
  void cut();

  // Elements per shard of a tensor of `numel` elements over `ranks`.
  static int64_t shard_elems(int64_t numel, int ranks);

  // Residency: the layer's tensors are gathered at its first acquire and freed at its last
  // release (acquires nest: the model holds the embedding and head around the blocks).
  void acquire(int64_t layer) override;
  void release(int64_t layer) override;

  // Every tensor whole (to save the model or a checkpoint, or to compare the ranks), until
  // release_all(); every rank must call both.
  void gather_all();
  void release_all();

  // This rank's shard of tensor `id`: a 1-D Param of shard_elems(numel, N) elements with the
  // tensor's id, name, role and dtype, and first = rank·s.
  Param& shard(int id) { return shards_[static_cast<size_t>(id)]; }
  std::vector<Param>& shards() { return shards_; }
  int ranks() const { return comm_.size(); }

 private:
  void gather(Param& p);
  void free_whole(Param& p);
  ModelParams& params_;
  Communicator& comm_;
  MemoryTracker& tracker_;
  Backend& backend_;
  std::vector<Param> shards_;                 // indexed by Param::id
  std::map<int64_t, std::vector<int>> layer_ids_;  // layer → its tensors' ids
  std::map<int64_t, int> users_;                   // layer → acquires not yet released
  bool all_whole_ = false;
  bool cut_ = false;
};

}  // namespace lomo
