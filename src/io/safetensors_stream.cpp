#include "io/safetensors_stream.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace lomo {

uint64_t TensorSpecOut::bytes() const {
  uint64_t n = 1;
  for (int64_t s : shape) n *= static_cast<uint64_t>(s);
  return dtype_size(dtype) * n;
}

void write_safetensors_streamed(const std::string& path, const std::vector<TensorSpecOut>& tensors,
                                const std::map<std::string, std::string>& metadata,
                                const std::function<void(size_t i, const ByteSink& sink)>& produce) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes()}}};
    offset += t.bytes();
  }
  std::string hdr = header.dump();
  while ((hdr.size() + 8) % 8 != 0) hdr.push_back(' ');  // keeps the data block 8-byte aligned
  write_file_atomic(path, [&](const ByteSink& sink) {
    const uint64_t len = hdr.size();
    sink(&len, 8);
    sink(hdr.data(), hdr.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      uint64_t written = 0;
      produce(i, [&](const void* data, size_t n) {
        written += n;
        sink(data, n);
      });
      LOMO_ASSERT(written == tensors[i].bytes(),
                  path + ": " + tensors[i].name + " was produced with the wrong size");
    }
  });
}

}  // namespace lomo
