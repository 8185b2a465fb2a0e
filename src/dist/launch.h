// How this process was started: alone, or as one rank of several, read from the launcher's
// environment. mpirun (OpenMPI: OMPI_COMM_WORLD_*; MPICH/Hydra: PMI_RANK, PMI_SIZE,
// MPI_LOCALRANKID, MPI_LOCALNRANKS) starts ranks that talk over MPI. A torchrun-style launcher
// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) is recognised, and
// refused with what to do when it starts more than one rank: lomo's ranks meet through MPI.
#pragma once

#include <functional>
#include <string>

namespace lomo {

enum class Launcher { Alone, Mpi, TorchStyle };

struct LaunchInfo {
  Launcher launcher = Launcher::Alone;
  int rank = 0, size = 1;
  int local_rank = 0, local_size = 1;  // among the ranks on this machine
};

// `env` returns a variable's value or null (std::getenv in use; a map in tests). Throws
// lomo::Error for values that are not numbers in range, naming the variable.
LaunchInfo read_launch(const std::function<const char*(const char*)>& env);

const char* launcher_name(Launcher l);  // "alone", "mpirun", "RANK/WORLD_SIZE"

}  // namespace lomo
