// An output folder that appears whole or not at all: checked before any work starts, filled
// under a staging name beside it, renamed into place at the end. A failed run leaves nothing.
#pragma once

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
  void create();
  void commit();  // rename staging → final

 private:
  std::string final_, staging_;
  bool created_ = false, committed_ = false;
};

}  // namespace lomo
