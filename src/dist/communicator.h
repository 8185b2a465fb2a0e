// Collectives between the ranks of a run (docs/distributed.md): the interface data parallelism
// calls, implemented over MPI for CPU ranks (dist/mpi_communicator.h) and NCCL for GPU ranks
// (dist/nccl_communicator.h), and by LocalCommunicator for a run of one rank.
//
// Buffers (float*) are in the backend's memory: the host's for MPI, the GPU's for NCCL, where the
// collective is queued on the backend's stream in order with its kernels. Scalars are host
// values and the calls on them return when every rank has contributed. Every rank must make the
// same calls in the same order; a rank that fails stops them all (World::abort), never a hang.
//
// Every collective leaves identical bits on every rank: each element of a sum is reduced in one
// place and its result copied (reduce-scatter then all-gather), whatever the library's algorithm.
#pragma once

#include <cstdint>
#include <vector>

namespace lomo {

class Backend;  // ops/backend.h

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* name() const = 0;  // "mpi", "nccl", "local"

  // data (n) ← Σ over ranks of data, in place.
  virtual void all_reduce_sum(float* data, int64_t n) = 0;
  // out (n) ← Σ over ranks of in[rank·n, rank·n + n); in (size·n).
  virtual void reduce_scatter_sum(const float* in, float* out, int64_t n) = 0;
  // out (size·n) ← every rank's in (n), in rank order.
  virtual void all_gather(const float* in, float* out, int64_t n) = 0;
  // data (n) ← root's data.
  virtual void broadcast(float* data, int64_t n, int root) = 0;

  // Host scalars.
  virtual double all_reduce_sum(double v) = 0;
  virtual double all_reduce_max(double v) = 0;
  virtual std::vector<uint64_t> all_gather(uint64_t v) = 0;  // (size), in rank order
  virtual void barrier() = 0;
};

// One rank: every collective is a copy (or nothing). The data-parallel path of a run launched
// alone, so that `--parallel dp` on one process runs the code it runs on many. Copies are host
// memmoves, or, given a backend, its copy within its memory (a GPU's buffers).
class LocalCommunicator : public Communicator {
 public:
  explicit LocalCommunicator(Backend* backend = nullptr) : backend_(backend) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* name() const override { return "local"; }
  void all_reduce_sum(float*, int64_t) override {}
  void reduce_scatter_sum(const float* in, float* out, int64_t n) override;
  void all_gather(const float* in, float* out, int64_t n) override;
  void broadcast(float*, int64_t, int) override {}
  double all_reduce_sum(double v) override { return v; }
  double all_reduce_max(double v) override { return v; }
  std::vector<uint64_t> all_gather(uint64_t v) override { return {v}; }
  void barrier() override {}

 private:
  void copy(float* out, const float* in, int64_t n);
  Backend* backend_;
};

}  // namespace lomo
