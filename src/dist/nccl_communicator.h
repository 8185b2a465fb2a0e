// The collectives over NCCL, for GPU ranks: buffers in the GPU's memory, each collective queued
// on the CUDA backend's stream in order with its kernels (no host synchronisation); the scalar
// calls go through the host communicator (MPI), which also carries NCCL's unique id from rank 0.
// Built when CUDA and libnccl are found (LOMO_NCCL); compiled in CI, run only on a GPU machine.
#pragma once

#include <cstdint>
#include <vector>

#include "dist/communicator.h"

namespace lomo {

class Backend;

class NcclCommunicator : public Communicator {
 public:
  // `backend` must be a CudaBackend (its device and stream are used); `host` joins the same ranks.
  NcclCommunicator(Communicator& host, Backend& backend);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  const char* name() const override { return "nccl"; }
  void all_reduce_sum(float* data, int64_t n) override;
  void reduce_scatter_sum(const float* in, float* out, int64_t n) override;
  void all_gather(const float* in, float* out, int64_t n) override;
  void broadcast(float* data, int64_t n, int root) override;
  double all_reduce_sum(double v) override { return host_.all_reduce_sum(v); }
  double all_reduce_max(double v) override { return host_.all_reduce_max(v); }
  std::vector<uint64_t> all_gather(uint64_t v) override { return host_.all_gather(v); }
  void barrier() override;

 private:
  Communicator& host_;
  Backend& backend_;
  void* comm_ = nullptr;    // ncclComm_t
  void* stream_ = nullptr;  // cudaStream_t, the backend's
};

}  // namespace lomo
