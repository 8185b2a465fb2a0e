// GGUF files (v2, v3), the llama.cpp format: reader and writer.
// Layout: "GGUF", u32 version, u64 tensor count, u64 metadata count; metadata as
// (string key, u32 type, value); tensor infos as (string name, u32 n_dims, u64 ne[n_dims],
// u32 ggml type, u64 offset); padding to general.alignment (default 32); the data block.
// Strings are u64 length + bytes; arrays are u32 element type + u64 count + elements. ne[0] is
// the fastest-varying dimension, so a Hugging Face (rows, cols) matrix has ne = [cols, rows].
// The reader checks every count, length and offset against the file size before it reads or
// allocates: a malformed file is a lomo::Error, never a crash or a huge allocation.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/file.h"
#include "io/ggml_quants.h"

namespace lomo {

enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

// A metadata value: its GGUF type (and element type for arrays) and the value as JSON.
struct GgufValue {
  GgufType type = GgufType::U32;
  GgufType elem_type = GgufType::U32;  // arrays only
  nlohmann::json value;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> ne;  // ggml order: ne[0] fastest
  uint32_t type = 0;
  uint64_t offset = 0;  // into the data block
  uint64_t nbytes = 0;
  uint64_t numel() const;
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find(const std::string& name) const;
  const GgufValue* get(const std::string& key) const;

  // Dequantises the tensor into dst (numel floats). Throws lomo::Error for unsupported types.
  void read_f32(const GgufTensorInfo& t, float* dst) const;
  // Rows [row_begin, row_begin + rows) of the tensor seen as (numel / ne[0], ne[0]) into dst
  // (rows · ne[0] floats); a row is whole blocks, so only those rows' bytes are read.
  void read_f32_rows(const GgufTensorInfo& t, int64_t row_begin, int64_t rows, float* dst) const;

 private:
  std::unique_ptr<InputFile> file_;
  uint32_t version_ = 0;
  uint64_t data_start_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
};

// True if the file starts with the GGUF magic.
bool is_gguf_file(const std::string& path);

struct GgufTensorOut {
  std::string name;
  std::vector<uint64_t> ne;  // ggml order
  GgmlType type;
  // Writes the tensor's numel fp32 values into dst; called once, when the tensor is written, so
  // only one tensor is ever converted at a time.
  std::function<void(float* dst)> fill;
};

// Writes a GGUF v3 file atomically (alignment 32), streaming one tensor at a time.
void write_gguf(const std::string& path, const std::map<std::string, GgufValue>& metadata,
                const std::vector<GgufTensorOut>& tensors);

}  // namespace lomo
