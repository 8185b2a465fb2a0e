// The architecture check (tests/check_layers.sh) passes on the source tree, and fails, naming the
// file, on a copy of it with each kind of violation planted: an include against the layer
// direction, a backend's own header outside ops/, OpenMP outside ops/cpu/, an unknown folder.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace lomo {
namespace {

namespace fs = std::filesystem;

struct Result {
  int status = -1;
  std::string output;
};

Result check(const std::string& root) {
  const std::string cmd =
      std::string(LOMO_SOURCE_DIR) + "/tests/check_layers.sh " + root + " 2>&1";
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;  // a signal is a failure, never a pass
  return r;
}

TEST(Layers, SourceTreeFollowsTheDirection) {
  const Result r = check(LOMO_SOURCE_DIR);
  EXPECT_EQ(r.status, 0) << r.output;
}

TEST(Layers, PlantedViolationsAreNamed) {
  const fs::path root = fs::path(::testing::TempDir()) / "layers_copy";
  fs::remove_all(root);
  fs::create_directories(root);
  fs::copy(fs::path(LOMO_SOURCE_DIR) / "src", root / "src", fs::copy_options::recursive);
  const Result clean = check(root.string());
  ASSERT_EQ(clean.status, 0) << clean.output;
  const struct {
    const char* file;
    const char* text;
    const char* expect;
    const char* where;  // the file or folder the message must name
  } plants[] = {
      {"src/model/planted_up.cpp", "#include \"train/trainer.h\"\n", "model/ may not include",
       "planted_up.cpp"},
      {"src/optim/planted_cpu.cpp", "#include \"ops/cpu/gemm.h\"\n", "backend's own header",
       "planted_cpu.cpp"},
      {"src/train/planted_omp.cpp", "void f() {\n#pragma omp parallel for\n}\n",
       "OpenMP outside ops/cpu/", "planted_omp.cpp"},
      {"src/cli/planted_threads.cpp", "int n() { return omp_get_max_threads(); }\n",
       "OpenMP outside ops/cpu/", "planted_threads.cpp"},
      {"src/gadgets/x.h", "#pragma once\n", "a folder the layer map does not know", "gadgets"},
  };
  for (const auto& p : plants) {
    fs::create_directories((root / p.file).parent_path());
    std::ofstream(root / p.file) << p.text;
    const Result r = check(root.string());
    EXPECT_EQ(r.status, 1) << p.file << "\n" << r.output;
    EXPECT_NE(r.output.find(p.expect), std::string::npos) << p.file << "\n" << r.output;
    EXPECT_NE(r.output.find(p.where), std::string::npos) << r.output;
    fs::remove(root / p.file);
    if (fs::is_empty((root / p.file).parent_path())) fs::remove((root / p.file).parent_path());
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace lomo
