// Files in and out: whole-file reads by pread, writes that land atomically.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace lomo {

// A file read with pread (RAII). Unlike a memory map, the bytes read do not stay resident and
// counted in the process's RSS after they have been copied out.
class InputFile {
 public:
  explicit InputFile(const std::string& path);  // throws lomo::Error naming the path
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile();

  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Reads exactly n bytes at offset; throws lomo::Error on a short read.
  void read_at(uint64_t offset, void* dst, size_t n) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// Receives the bytes of a file being written; throws lomo::Error on failure.
using ByteSink = std::function<void(const void* data, size_t n)>;

// Writes a file atomically: `produce` streams its contents into a temporary file beside `path`,
// which is then fsynced and renamed into place. On any failure the temporary file is removed
// and `path` is untouched.
void write_file_atomic(const std::string& path,
                       const std::function<void(const ByteSink&)>& produce);
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace lomo
