// Safetensors reader and writer.
// Layout: u64 little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data block; offsets are relative to the start of the data block.
// The reader validates every field against the file size before anything is read: a malformed
// file is a lomo::Error naming the file and the tensor, never a crash.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/progress.h"
#include "io/file.h"

namespace lomo {

enum class DType { F32, F16, BF16, F64 };
const char* dtype_name(DType d);
size_t dtype_size(DType d);

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data block
  uint64_t end = 0;
  int64_t numel() const;
};

std::string shape_str(const std::vector<int64_t>& shape);  // "[576, 1536]"

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Converts the tensor's elements to fp32 / fp64 into `dst` (numel elements).
  void read(const TensorInfo& t, float* dst) const;
  // Elements [begin, begin + n) of t, converted, into dst(n).
  void read(const TensorInfo& t, int64_t begin, int64_t n, float* dst) const;
  void read(const TensorInfo& t, double* dst) const;

 private:
  std::unique_ptr<InputFile> file_;
  uint64_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

struct TensorView {
  std::string name;
  std::vector<int64_t> shape;
  const void* data;  // numel(shape) elements of dtype
  DType dtype = DType::F32;
};

// Writes tensors atomically (temporary file + rename), streamed one tensor at a time;
// `progress` is told before each tensor and at the end (elements written, of all: a large
// tensor weighs what it costs).
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata,
                       const ProgressFn& progress = {});

}  // namespace lomo
