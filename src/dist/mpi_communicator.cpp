#include "dist/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <string>

#include "core/error.h"

namespace lomo {

namespace {

// MPI's error handler is MPI_ERRORS_ARE_FATAL by default (the job aborts with MPI's message);
// a return code is checked anyway, in case a launcher changed it.
void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(std::string("MPI ") + what + " failed: " + std::string(text, static_cast<size_t>(len)));
}

// MPI counts are int: collectives on longer buffers go in pieces of this many elements.
constexpr int64_t kChunk = int64_t{1} << 28;

}  // namespace

MpiCommunicator::MpiCommunicator() {
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "Comm_size");
}

// Reduce-scatter, then all-gather: each element is summed on one rank, in that library's order,
// and its bits copied to the others, so every rank holds the same sum whatever MPI_Allreduce's
// algorithm would have done (design §2: ranks apply identical updates).
void MpiCommunicator::all_reduce_sum(float* data, int64_t n) {
  if (size_ == 1 || n == 0) return;
  for (int64_t off = 0; off < n; off += kChunk * size_) {
    const int64_t len = std::min(kChunk * size_, n - off);
    // Element counts per rank: the first len % size ranks take one more.
    std::vector<int> counts(static_cast<size_t>(size_)), displs(static_cast<size_t>(size_));
    int64_t at = 0;
    for (int r = 0; r < size_; ++r) {
      const int64_t c = len / size_ + (r < len % size_ ? 1 : 0);
      counts[static_cast<size_t>(r)] = static_cast<int>(c);
      displs[static_cast<size_t>(r)] = static_cast<int>(at);
      at += c;
    }
    float* part = data + off;
    const auto me = static_cast<size_t>(rank_);
    // In place: each rank's reduced piece lands at its own displacement of `part`.
    check(MPI_Reduce_scatter(MPI_IN_PLACE, part, counts.data(), MPI_FLOAT, MPI_SUM,
                             MPI_COMM_WORLD),
          "Reduce_scatter");
    // MPI_IN_PLACE reduce-scatter leaves rank r's piece at the start of the buffer.
    // (displs ≥ counts for every rank but 0, so the ranges never overlap; copy_backward anyway.)
    if (displs[me] != 0) {
      std::copy_backward(part, part + counts[me], part + displs[me] + counts[me]);
    }
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, part, counts.data(), displs.data(),
                         MPI_FLOAT, MPI_COMM_WORLD),
          "Allgatherv");
  }
}

void MpiCommunicator::reduce_scatter_sum(const float* in, float* out, int64_t n) {
  if (size_ == 1) {  // the one share is the whole buffer
    std::copy_n(in, n, out);
    return;
  }
  for (int64_t off = 0; off < n; off += kChunk) {
    const int64_t len = std::min(kChunk, n - off);
    // Rank r's piece of this chunk sits at in[r·n + off, … + len): gather the pieces contiguous.
    std::vector<float> send(static_cast<size_t>(len * size_));
    for (int r = 0; r < size_; ++r) {
      std::copy_n(in + r * n + off, len, send.data() + r * len);
    }
    check(MPI_Reduce_scatter_block(send.data(), out + off, static_cast<int>(len), MPI_FLOAT,
                                   MPI_SUM, MPI_COMM_WORLD),
          "Reduce_scatter_block");
  }
}

void MpiCommunicator::all_gather(const float* in, float* out, int64_t n) {
  if (size_ == 1) {
    std::copy_n(in, n, out);
    return;
  }
  for (int64_t off = 0; off < n; off += kChunk) {
    const int64_t len = std::min(kChunk, n - off);
    std::vector<float> recv(static_cast<size_t>(len * size_));
    check(MPI_Allgather(in + off, static_cast<int>(len), MPI_FLOAT, recv.data(),
                        static_cast<int>(len), MPI_FLOAT, MPI_COMM_WORLD),
          "Allgather");
    for (int r = 0; r < size_; ++r) std::copy_n(recv.data() + r * len, len, out + r * n + off);
  }
}

void MpiCommunicator::broadcast(float* data, int64_t n, int root) {
  for (int64_t off = 0; off < n; off += kChunk) {
    const int64_t len = std::min(kChunk, n - off);
    check(MPI_Bcast(data + off, static_cast<int>(len), MPI_FLOAT, root, MPI_COMM_WORLD), "Bcast");
  }
}

double MpiCommunicator::all_reduce_sum(double v) {
  // Gathered and summed in rank order on every rank: the same bits everywhere.
  std::vector<double> all(static_cast<size_t>(size_));
  check(MPI_Allgather(&v, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, MPI_COMM_WORLD), "Allgather");
  double s = 0;
  for (double x : all) s += x;
  return s;
}

double MpiCommunicator::all_reduce_max(double v) {
  double out = v;
  check(MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), "Allreduce");
  return out;
}

std::vector<uint64_t> MpiCommunicator::all_gather(uint64_t v) {
  std::vector<uint64_t> all(static_cast<size_t>(size_));
  check(MPI_Allgather(&v, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD),
        "Allgather");
  return all;
}

void MpiCommunicator::barrier() { check(MPI_Barrier(MPI_COMM_WORLD), "Barrier"); }

}  // namespace lomo
