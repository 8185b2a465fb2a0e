// The ranks of this run and how they talk: MPI's lifetime (initialised when mpirun started this
// process, finalised at the end) and the communicators over it.
//
//   std::unique_ptr<World> world = World::start();   // before any thread is started
//   Communicator& c = world->host();                  // MPI between ranks, or LocalCommunicator
//
// A rank that fails calls abort(): MPI_Abort ends every rank of the job (mpirun prints which
// rank ended it), so no rank waits forever in a collective.
#pragma once

#include <memory>

#include "dist/communicator.h"
#include "dist/launch.h"

namespace lomo {

class Backend;

class World {
 public:
  // Reads the launch (dist/launch.h) and starts MPI when mpirun started this process. Throws
  // lomo::Error, saying what to do, for several ranks that MPI cannot join: a build without MPI,
  // or a torchrun-style launcher.
  static std::unique_ptr<World> start();
  // One rank, no MPI (tests, and every command but train).
  static std::unique_ptr<World> alone();
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  const LaunchInfo& launch() const { return launch_; }
  int rank() const { return launch_.rank; }
  int size() const { return launch_.size; }
  // Collectives on host buffers and scalars: MPI across ranks, a LocalCommunicator alone.
  Communicator& host() { return *host_; }
  // The communicator for buffers in `backend`'s memory: host() for the CPU; NCCL (its unique id
  // exchanged over MPI) for a GPU, made on the first call. Throws when this build cannot reach
  // the backend's memory from other ranks.
  Communicator& for_backend(Backend& backend);
  // Ends every rank with `code` (MPI_Abort); alone, returns and the caller exits.
  void abort(int code);

 private:
  World() = default;
  LaunchInfo launch_;
  bool mpi_ = false;
  std::unique_ptr<Communicator> host_;
  std::unique_ptr<Communicator> device_;
};

// Whether this build has MPI (LOMO_HAVE_MPI) and NCCL (LOMO_HAVE_NCCL).
bool built_with_mpi();
bool built_with_nccl();

}  // namespace lomo
