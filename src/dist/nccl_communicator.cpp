#include "dist/nccl_communicator.h"

#include <nccl.h>

#include <cstring>
#include <string>

#include "core/error.h"
#include "ops/backend.h"

namespace lomo {

namespace {

void check(ncclResult_t rc, const char* what) {
  if (rc == ncclSuccess) return;
  throw Error(std::string("NCCL ") + what + " failed: " + ncclGetErrorString(rc) + " (" +
              (ncclGetLastError(nullptr) ? ncclGetLastError(nullptr) : "") + ")");
}

ncclComm_t as_comm(void* c) { return static_cast<ncclComm_t>(c); }
cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

}  // namespace

NcclCommunicator::NcclCommunicator(Communicator& host, Backend& backend)
    : host_(host), backend_(backend) {
  if (backend.allocator().device().kind != Device::Kind::Cuda || !backend.native_queue()) {
    throw Error("NCCL needs the CUDA backend; this run's backend is " + backend.name());
  }
  stream_ = backend.native_queue();  // the backend made its device current on this thread
  // Rank 0 makes the unique id; the host communicator carries its bytes to the others (as floats:
  // a broadcast moves bits, and the id's 128 bytes are a whole number of floats).
  ncclUniqueId id;
  static_assert(sizeof id % sizeof(float) == 0, "ncclUniqueId is not a whole number of floats");
  if (host.rank() == 0) check(ncclGetUniqueId(&id), "GetUniqueId");
  std::vector<float> bits(sizeof id / sizeof(float));
  std::memcpy(bits.data(), &id, sizeof id);
  host.broadcast(bits.data(), static_cast<int64_t>(bits.size()), 0);
  std::memcpy(&id, bits.data(), sizeof id);
  ncclComm_t comm = nullptr;
  check(ncclCommInitRank(&comm, host.size(), id, host.rank()), "CommInitRank");
  comm_ = comm;
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_ != nullptr) ncclCommDestroy(as_comm(comm_));
}

// NCCL's all-reduce is a reduce-scatter and an all-gather on its ring or tree; either way each
// element is summed in one order and every rank gets those bits.
void NcclCommunicator::all_reduce_sum(float* data, int64_t n) {
  check(ncclAllReduce(data, data, static_cast<size_t>(n), ncclFloat32, ncclSum, as_comm(comm_),
                      as_stream(stream_)),
        "AllReduce");
}

void NcclCommunicator::reduce_scatter_sum(const float* in, float* out, int64_t n) {
  check(ncclReduceScatter(in, out, static_cast<size_t>(n), ncclFloat32, ncclSum, as_comm(comm_),
                          as_stream(stream_)),
        "ReduceScatter");
}

void NcclCommunicator::all_gather(const float* in, float* out, int64_t n) {
  check(ncclAllGather(in, out, static_cast<size_t>(n), ncclFloat32, as_comm(comm_),
                      as_stream(stream_)),
        "AllGather");
}

void NcclCommunicator::broadcast(float* data, int64_t n, int root) {
  check(ncclBroadcast(data, data, static_cast<size_t>(n), ncclFloat32, root, as_comm(comm_),
                      as_stream(stream_)),
        "Broadcast");
}

void NcclCommunicator::barrier() {
  backend_.synchronize();
  host_.barrier();
}

}  // namespace lomo
