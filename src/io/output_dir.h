// An output folder that appears whole or not at all: checked before any work starts, filled
// under a staging name beside it, renamed into place at the end. A failed run leaves nothing.
#pragma once

#include <cstddef>
#include <string>

namespace lomo {

class OutputDir {
 public:
  // Throws lomo::Error if `final_path` exists and is not an empty folder, or its parent is not
  // writable.
  explicit OutputDir(std::string final_path);
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;
  ~OutputDir();  // removes the staging folder unless commit() succeeded

  const std::string& staging() const { return staging_; }  // created on first call of create()
  // Creates the staging folder: proof, before any long work, that the output can be written.
  void create();
  // Throws lomo::Error with the figures if the file system that will hold the output has less
  // than `bytes` (plus a margin for small files) available.
  void require_space(size_t bytes) const;
  void commit();  // rename staging → final

 private:
  std::string final_, staging_;
  bool created_ = false, committed_ = false;
};

}  // namespace lomo
