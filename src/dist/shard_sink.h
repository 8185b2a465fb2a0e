// Sharded parameters' gradient sink (`--parallel shard`, dist/param_shards.h): wraps the run's
// sink (LOMO's update, or the norm pass) and reduces each gradient over the ranks the moment
// backward completes it. Backward writes the whole gradient of the gathered tensor into a
// ShardGradients buffer; the update pass reduce-scatters it, so that rank r receives the sum over
// ranks of elements [r·s, r·s + s) and hands that to the wrapped sink as the gradient of its
// shard (ParamShards::shard), which it updates. The norm pass all-reduces instead: every rank then
// measures the whole gradient and finds the same norm and the same first non-finite tensor. So
// does AdaLomo, whose factored statistics and RMS need the whole gradient: every rank applies the
// whole update to its gathered copy (the same bits on every rank, data parallelism's), and keeps
// its shard's slice of it; its row and column statistics (rows + cols per matrix) are replicated.
//
// Each rank's gradient is of its share's loss over the global batch's loss tokens
// (Batch::loss_denominator), so the sum is the global batch's gradient, as in data parallelism.
#pragma once

#include <vector>

#include "core/memory.h"
#include "dist/communicator.h"
#include "dist/param_shards.h"
#include "model/grad_sink.h"

namespace lomo {

// The whole-tensor gradients backward writes under sharding, as ReusableGradients
// (optim/sinks.h) keeps them, each padded to N·s elements for the reduce-scatter: one buffer
// of the largest padded tensor, and the tied embedding's held from the LM head to the lookup.
class ShardGradients {
 public:
  // held_id: the tied embedding's id, or −1.
  ShardGradients(const ModelParams& params, int held_id, int ranks, MemoryTracker& tracker,
                 Backend& backend);
  float* buffer_for(const Param& p);  // (N·s) of p
  int ranks() const { return ranks_; }

 private:
  int held_id_;
  int ranks_;
  Buffer held_;
  Buffer shared_;
};

class ShardSink : public GradSink {
 public:
  // Scatter: `inner` updates shards (its gradient_buffer gives a shard's buffer). Measure: it
  // measures whole gradients. UpdateWhole: it updates the gathered whole tensor, whose slice
  // then becomes this rank's shard. seconds (optional): the time in the collectives is added.
  enum class Reduce { Scatter, Measure, UpdateWhole };
  ShardSink(GradSink& inner, ParamShards& shards, ShardGradients& grads, Communicator& comm,
            Backend& backend, Reduce reduce, double* seconds = nullptr)
      : inner_(inner), shards_(shards), grads_(grads), comm_(comm), backend_(backend),
        reduce_(reduce), seconds_(seconds) {}
  bool trains(const Param& p) const override { return inner_.trains(p); }
  float* gradient_buffer(const Param& p) override { return grads_.buffer_for(p); }
  void consume(Param& p, float* grad) override;
  // std::nullopt: the gradient must exist to be reduced.

 private:
  GradSink& inner_;
  ParamShards& shards_;
  ShardGradients& grads_;
  Communicator& comm_;
  Backend& backend_;
  Reduce reduce_;
  double* seconds_;
};

}  // namespace lomo
