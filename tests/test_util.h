// Helpers shared by the tests: fixture access and tensor comparison that names what failed.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/batch.h"

namespace lomo::test {

// A command run through the shell: its exit code (−1 when it did not exit normally), the signal
// that killed it (0 if none), and what it wrote to stdout (add " 2>&1" to the command for both).
struct CommandResult {
  int status = -1;
  int signal = 0;
  std::string output;
};

// A fresh empty folder under the system's temporary folder, unique to this process and `name`.
inline std::string temp_dir(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path d = fs::temp_directory_path() / ("lomo_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

inline CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
  return r;
}

// The fixtures of the source tree, or of $LOMO_FIXTURES_DIR (the device check runs the tests on
// another machine, where the tree is elsewhere).
inline std::string fixture_dir(const std::string& name) {
  const char* moved = std::getenv("LOMO_FIXTURES_DIR");
  return std::string(moved != nullptr && *moved != '\0' ? moved : LOMO_FIXTURES_DIR) + "/" + name;
}

inline std::vector<float> read_tensor(const SafetensorsFile& f, const std::string& name) {
  const TensorInfo* t = f.find(name);
  if (t == nullptr) {
    ADD_FAILURE() << f.path() << " has no tensor " << name;
    return {};
  }
  std::vector<float> v(t->numel());
  f.read(*t, v.data());
  return v;
}

// ‖a − b‖∞ / max(‖b‖∞, floor): the error relative to the tensor's own scale.
inline double rel_inf_error(const float* a, const float* b, size_t n, double floor = 1e-30) {
  double err = 0, scale = floor;
  for (size_t i = 0; i < n; ++i) {
    err = std::max(err, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return err / scale;
}

// The fixture batch: input_ids (B, T) and lengths (B) stored as floats.
inline Batch fixture_batch(const SafetensorsFile& ref) {
  const auto ids = read_tensor(ref, "input_ids");
  const auto lengths = read_tensor(ref, "lengths");
  const size_t B = lengths.size(), T = ids.size() / B;
  std::vector<Sequence> seqs(B);
  for (size_t b = 0; b < B; ++b) {
    for (size_t t = 0; t < static_cast<size_t>(lengths[b]); ++t) {
      seqs[b].ids.push_back(static_cast<int32_t>(ids[b * T + t]));
    }
  }
  return make_batch(seqs);
}

}  // namespace lomo::test
