#include "dist/world.h"

#include <cstdlib>
#include <string>

#include "core/error.h"
#include "ops/backend.h"

#ifdef LOMO_HAVE_MPI
#include <mpi.h>

#include "dist/mpi_communicator.h"
#endif
#ifdef LOMO_HAVE_NCCL
#include "dist/nccl_communicator.h"
#endif

namespace lomo {

bool built_with_mpi() {
#ifdef LOMO_HAVE_MPI
  return true;
#else
  return false;
#endif
}

bool built_with_nccl() {
#ifdef LOMO_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

std::unique_ptr<World> World::alone() {
  std::unique_ptr<World> w(new World());
  w->host_ = std::make_unique<LocalCommunicator>();
  return w;
}

std::unique_ptr<World> World::start() {
  const LaunchInfo l = read_launch([](const char* name) { return std::getenv(name); });
  if (l.launcher == Launcher::Alone || (l.launcher == Launcher::TorchStyle && l.size == 1)) {
    return alone();
  }
  if (l.launcher == Launcher::TorchStyle) {
    throw Error("started as rank " + std::to_string(l.rank) + " of " + std::to_string(l.size) +
                " by a launcher that sets RANK/WORLD_SIZE (torchrun, or similar); lomo's ranks "
                "meet through MPI: start them with mpirun -np " + std::to_string(l.size) +
                " lomo train ... (MASTER_ADDR/MASTER_PORT are not used)");
  }
#ifdef LOMO_HAVE_MPI
  std::unique_ptr<World> w(new World());
  w->launch_ = l;
  int provided = 0;
  // Only the main thread calls MPI (OpenMP's threads compute between the calls).
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    throw Error("MPI_Init failed (rank " + std::to_string(l.rank) + " of " +
                std::to_string(l.size) + ")");
  }
  w->mpi_ = true;
  auto comm = std::make_unique<MpiCommunicator>();
  if (comm->size() != l.size || comm->rank() != l.rank) {
    throw Error("MPI sees rank " + std::to_string(comm->rank()) + " of " +
                std::to_string(comm->size()) + " but the launcher's environment says rank " +
                std::to_string(l.rank) + " of " + std::to_string(l.size) +
                " (mixed MPI installations? use the mpirun of the MPI lomo was built with)");
  }
  w->host_ = std::move(comm);
  return w;
#else
  throw Error("started by mpirun as rank " + std::to_string(l.rank) + " of " +
              std::to_string(l.size) +
              ", but this lomo was built without MPI: install libopenmpi-dev "
              "(scripts/setup.sh does) and rebuild");
#endif
}

World::~World() {
#ifdef LOMO_HAVE_MPI
  if (mpi_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
#endif
}

void World::abort(int code) {
#ifdef LOMO_HAVE_MPI
  if (mpi_ && size() > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  (void)code;
}

Communicator& World::for_backend(Backend& backend) {
  if (backend.allocator().device() == Device::host()) return host();
  if (device_) return *device_;
#ifdef LOMO_HAVE_NCCL
  device_ = std::make_unique<NcclCommunicator>(host(), backend);
#else
  if (size() > 1) {
    throw Error("data parallelism between GPU ranks needs NCCL, which this build lacks (CUDA "
                "with libnccl found: LOMO_NCCL=ON)");
  }
  device_ = std::make_unique<LocalCommunicator>(&backend);
#endif
  return *device_;
}

}  // namespace lomo
