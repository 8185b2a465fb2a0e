// The collectives over MPI (OpenMPI from Debian), for CPU ranks: buffers in host memory.
// Constructed after MPI_Init (dist/world.h owns MPI's lifetime), on MPI_COMM_WORLD.
#pragma once

#include "dist/communicator.h"

namespace lomo {

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator();
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "mpi"; }
  void all_reduce_sum(float* data, int64_t n) override;
  void reduce_scatter_sum(const float* in, float* out, int64_t n) override;
  void all_gather(const float* in, float* out, int64_t n) override;
  void broadcast(float* data, int64_t n, int root) override;
  double all_reduce_sum(double v) override;
  double all_reduce_max(double v) override;
  std::vector<uint64_t> all_gather(uint64_t v) override;
  void barrier() override;

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace lomo
