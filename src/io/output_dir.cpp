#include "io/output_dir.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <filesystem>

#include "core/error.h"

namespace lomo {

namespace fs = std::filesystem;

OutputDir::OutputDir(std::string final_path) : final_(std::move(final_path)) {
  while (final_.size() > 1 && final_.back() == '/') final_.pop_back();
  std::error_code ec;
  if (fs::exists(final_, ec)) {
    if (!fs::is_directory(final_) || !fs::is_empty(final_)) {
      throw Error(final_ +
                  ": output already exists and is not an empty folder; choose a new "
                  "--out or remove it");
    }
  }
  fs::path parent = fs::absolute(final_).parent_path();
  if (!fs::is_directory(parent, ec)) {
    throw Error(final_ + ": the parent folder " + parent.string() + " does not exist");
  }
  if (::access(parent.c_str(), W_OK) != 0) {
    throw Error(final_ + ": the parent folder " + parent.string() + " is not writable");
  }
  staging_ = final_ + ".partial-" + std::to_string(::getpid());
}

namespace {

// Staging folders of earlier runs into the same output that died without cleaning up (SIGKILL,
// power loss): `<final>.partial-<pid>` whose process no longer exists.
void remove_stale_staging(const std::string& final_path) {
  const fs::path f = fs::absolute(final_path);
  const std::string prefix = f.filename().string() + ".partial-";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(f.parent_path(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string pid = name.substr(prefix.size());
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    const long id = std::stol(pid);
    if (id == ::getpid() || ::kill(static_cast<pid_t>(id), 0) == 0 || errno != ESRCH) continue;
    fs::remove_all(e.path(), ec);
  }
}

}  // namespace

void OutputDir::create() {
  if (created_) return;
  remove_stale_staging(final_);
  std::error_code ec;
  fs::create_directories(staging_, ec);
  if (ec) {
    throw Error(final_ + ": cannot create the output folder (" + staging_ + "): " + ec.message());
  }
  created_ = true;
}

void OutputDir::require_space(size_t bytes) const {
  std::error_code ec;
  const fs::path parent = fs::absolute(final_).parent_path();
  const fs::space_info s = fs::space(parent, ec);
  if (ec) return;  // unknown: the write itself will say
  const size_t need = bytes + bytes / 100 + (size_t{16} << 20);  // tokenizer files, metadata
  if (s.available < need) {
    const auto mib = [](size_t b) { return std::to_string(b >> 20) + " MiB"; };
    throw Error(final_ + ": the output needs about " + mib(need) + " but only " +
                mib(s.available) + " is free on the file system of " + parent.string() +
                "; free some space or choose another --out");
  }
}

void OutputDir::commit() {
  create();
  std::error_code ec;
  if (fs::exists(final_, ec)) fs::remove(final_, ec);  // an empty folder, checked at start
  fs::rename(staging_, final_, ec);
  if (ec) throw Error(final_ + ": cannot move the finished output into place: " + ec.message());
  committed_ = true;
}

OutputDir::~OutputDir() {
  if (created_ && !committed_) {
    std::error_code ec;
    fs::remove_all(staging_, ec);
  }
}

}  // namespace lomo
