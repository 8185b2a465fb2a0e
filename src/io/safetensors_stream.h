// A safetensors file written tensor by tensor from a producer, so that a file larger than memory
// can be made with one tensor in memory at a time (lomo init of a 7B model: 27 GB of fp32).
// Layout as io/safetensors.h; the header is known up front from the shapes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/file.h"
#include "io/safetensors.h"

namespace lomo {

struct TensorSpecOut {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  uint64_t bytes() const;
};

// Writes `path` atomically; produce(i, sink) must write exactly tensors[i].bytes() bytes.
void write_safetensors_streamed(const std::string& path, const std::vector<TensorSpecOut>& tensors,
                                const std::map<std::string, std::string>& metadata,
                                const std::function<void(size_t i, const ByteSink& sink)>& produce);

}  // namespace lomo
