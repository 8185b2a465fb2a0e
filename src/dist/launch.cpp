#include "dist/launch.h"

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace lomo {

namespace {

// An integer variable in [lo, hi], or `fallback` when unset.
int read_int(const std::function<const char*(const char*)>& env, const char* name, int lo, int hi,
             int fallback) {
  const char* v = env(name);
  if (v == nullptr) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || x < lo || x > hi) {
    throw Error(std::string("environment variable ") + name + "=\"" + v +
                "\" is not a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                "] (set by the launcher: start lomo with mpirun -np N)");
  }
  return static_cast<int>(x);
}

}  // namespace

LaunchInfo read_launch(const std::function<const char*(const char*)>& env) {
  constexpr int kMaxRanks = 1 << 20;
  LaunchInfo l;
  // The launcher's own variables, in order of precedence: OpenMPI's, then MPICH/Hydra's PMI.
  struct Names {
    const char *rank, *size, *local_rank, *local_size;
  };
  for (const Names& n : {Names{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                               "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
                         Names{"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
                         Names{"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"}}) {
    if (env(n.size) == nullptr) continue;
    l.launcher = std::string(n.size) == "WORLD_SIZE" ? Launcher::TorchStyle : Launcher::Mpi;
    l.size = read_int(env, n.size, 1, kMaxRanks, 1);
    l.rank = read_int(env, n.rank, 0, l.size - 1, 0);
    l.local_size = read_int(env, n.local_size, 1, l.size, l.size);  // unknown: assume one machine
    l.local_rank = read_int(env, n.local_rank, 0, l.local_size - 1, 0);
    if (env(n.rank) == nullptr) {
      throw Error(std::string(n.size) + " is set but " + n.rank +
                  " is not: the launcher's environment is incomplete");
    }
    return l;
  }
  return l;
}

const char* launcher_name(Launcher l) {
  switch (l) {
    case Launcher::Alone:
      return "alone";
    case Launcher::Mpi:
      return "mpirun";
    case Launcher::TorchStyle:
      return "RANK/WORLD_SIZE";
  }
  return "?";
}

}  // namespace lomo
