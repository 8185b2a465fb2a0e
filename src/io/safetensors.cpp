#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "core/error.h"
#include "core/half.h"
#include "io/safetensors_stream.h"

namespace lomo {

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::F64:
      return "F64";
  }
  return "?";
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::F32:
      return 4;
    case DType::F16:
      return 2;
    case DType::BF16:
      return 2;
    case DType::F64:
      return 8;
  }
  return 0;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

DType parse_dtype(const std::string& s, const std::string& where) {
  if (s == "F32") return DType::F32;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  if (s == "F64") return DType::F64;
  throw Error(where + ": unsupported dtype \"" + s + "\" (supported: F32, F16, BF16, F64)");
}

template <class Dst>
void convert(const uint8_t* src, DType dtype, int64_t n, Dst* dst) {
  switch (dtype) {
    case DType::F32:
      for (int64_t i = 0; i < n; ++i) {
        float v;
        std::memcpy(&v, src + 4 * i, 4);
        dst[i] = static_cast<Dst>(v);
      }
      break;
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, src + 8 * i, 8);
        dst[i] = static_cast<Dst>(v);
      }
      break;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = static_cast<Dst>(f16_to_f32(h));
      }
      break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = static_cast<Dst>(bf16_to_f32(h));
      }
      break;
  }
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(std::make_unique<InputFile>(path)) {
  const uint64_t size = file_->size();
  if (size < 8) {
    throw Error(path + ": not a safetensors file (" + std::to_string(size) +
                " bytes, shorter than the 8-byte header length)");
  }
  uint64_t header_len = 0;
  file_->read_at(0, &header_len, 8);
  if (header_len > size - 8) {
    throw Error(path + ": corrupt safetensors header: header length " + std::to_string(header_len) +
                " exceeds the file size " + std::to_string(size) + " (truncated file?)");
  }
  // The format's own limit (the reference implementation refuses larger headers), checked
  // before the header is allocated (after the file size, the likelier diagnosis).
  constexpr uint64_t kMaxHeader = 100'000'000;
  if (header_len > kMaxHeader) {
    throw Error(path + ": corrupt safetensors header: header length " + std::to_string(header_len) +
                " exceeds the format's limit of 100 MB");
  }
  data_start_ = 8 + header_len;
  const uint64_t data_size = size - data_start_;
  std::string hdr(header_len, '\0');
  file_->read_at(8, hdr.data(), header_len);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(hdr);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": corrupt safetensors header: invalid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(path + ": corrupt safetensors header: not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string where = path + ": tensor \"" + it.key() + "\"";
    if (it.key() == "__metadata__") {
      if (!it->is_object()) throw Error(path + ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (m->is_string()) metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const auto& t = *it;
    if (!t.is_object() || !t.contains("dtype") || !t.contains("shape") ||
        !t.contains("data_offsets") || !t["dtype"].is_string() || !t["shape"].is_array() ||
        !t["data_offsets"].is_array() || t["data_offsets"].size() != 2) {
      throw Error(where + ": header entry needs \"dtype\", \"shape\" and two \"data_offsets\"");
    }
    TensorInfo info;
    info.name = it.key();
    info.dtype = parse_dtype(t["dtype"].get<std::string>(), where);
    uint64_t numel = 1;
    for (const auto& s : t["shape"]) {
      if (!s.is_number_unsigned())
        throw Error(where + ": shape entries must be non-negative integers");
      const uint64_t d = s.get<uint64_t>();
      // A dimension must fit int64 even beside a zero one (shape [0, 2^63] holds no bytes).
      if (d > (uint64_t{1} << 62) ||
          (d != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / d)) {
        throw Error(where + ": shape " + t["shape"].dump() + " is impossibly large");
      }
      numel *= d;
      info.shape.push_back(static_cast<int64_t>(d));
    }
    for (const auto& o : t["data_offsets"]) {
      if (!o.is_number_unsigned())
        throw Error(where + ": data_offsets must be non-negative integers");
    }
    info.begin = t["data_offsets"][0].get<uint64_t>();
    info.end = t["data_offsets"][1].get<uint64_t>();
    if (info.begin > info.end || info.end > data_size) {
      throw Error(where + ": data_offsets [" + std::to_string(info.begin) + ", " +
                  std::to_string(info.end) + "] fall outside the data block of " +
                  std::to_string(data_size) + " bytes (truncated or corrupt file)");
    }
    if (info.end - info.begin != numel * dtype_size(info.dtype)) {
      throw Error(where + ": data_offsets span " + std::to_string(info.end - info.begin) +
                  " bytes but shape " + shape_str(info.shape) + " of " + dtype_name(info.dtype) +
                  " needs " + std::to_string(numel * dtype_size(info.dtype)));
    }
    tensors_.push_back(std::move(info));
  }
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end) {
      throw Error(path + ": tensors \"" + by_offset[i - 1]->name + "\" and \"" +
                  by_offset[i]->name + "\" overlap in the data block (corrupt file)");
    }
  }
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

namespace {

// Reads a tensor in chunks through a small staging buffer, converting as it goes.
template <class Dst>
void read_converted(const InputFile& f, uint64_t offset, DType dtype, int64_t numel, Dst* dst) {
  const size_t esize = dtype_size(dtype);
  if constexpr (std::is_same_v<Dst, float>) {
    if (dtype == DType::F32) {
      f.read_at(offset, dst, static_cast<size_t>(numel) * 4);
      return;
    }
  }
  constexpr int64_t kChunk = 1 << 18;  // elements
  std::vector<uint8_t> staging(static_cast<size_t>(std::min(numel, kChunk)) * esize);
  for (int64_t i = 0; i < numel; i += kChunk) {
    const int64_t n = std::min(kChunk, numel - i);
    f.read_at(offset + static_cast<uint64_t>(i) * esize, staging.data(),
              static_cast<size_t>(n) * esize);
    convert(staging.data(), dtype, n, dst + i);
  }
}

}  // namespace

void SafetensorsFile::read(const TensorInfo& t, float* dst) const {
  read_converted(*file_, data_start_ + t.begin, t.dtype, t.numel(), dst);
}

void SafetensorsFile::read(const TensorInfo& t, int64_t begin, int64_t n, float* dst) const {
  if (begin < 0 || n < 0 || begin + n > t.numel()) {
    throw Error(path() + ": " + t.name + ": elements [" + std::to_string(begin) + ", " +
                std::to_string(begin + n) + ") outside the tensor");
  }
  read_converted(*file_, data_start_ + t.begin + static_cast<uint64_t>(begin) * dtype_size(t.dtype),
                 t.dtype, n, dst);
}

void SafetensorsFile::read(const TensorInfo& t, double* dst) const {
  read_converted(*file_, data_start_ + t.begin, t.dtype, t.numel(), dst);
}

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata,
                       const ProgressFn& progress) {
  // Streamed tensor by tensor: saving never holds a second copy of the model in memory.
  std::vector<TensorSpecOut> specs;
  std::vector<int64_t> before;  // [i] elements of tensors[0..i)
  int64_t n = 0;
  for (const auto& t : tensors) {
    specs.push_back({t.name, t.shape, t.dtype});
    before.push_back(n);
    n += std::accumulate(t.shape.begin(), t.shape.end(), int64_t{1}, std::multiplies<>());
  }
  write_safetensors_streamed(path, specs, metadata, [&](size_t i, const ByteSink& sink) {
    if (progress) progress(before[i], n);
    sink(tensors[i].data, specs[i].bytes());
  });
  if (progress) progress(n, n);
}

}  // namespace lomo
