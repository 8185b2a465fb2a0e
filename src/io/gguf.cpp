#include "io/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace lomo {

uint64_t GgufTensorInfo::numel() const {
  uint64_t n = 1;
  for (uint64_t d : ne) n *= d;
  return n;
}

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kMaxCount = 1ull << 24;

// Sequential reads through a buffer, every one checked against the file size.
class Cursor {
 public:
  explicit Cursor(const InputFile& f) : f_(f) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return f_.size() - pos_; }

  void read(void* dst, uint64_t n, const char* what) {
    if (n > remaining()) {
      throw Error(f_.path() + ": truncated GGUF file: reading " + what + " at byte " +
                  std::to_string(pos_) + " needs " + std::to_string(n) + " bytes, " +
                  std::to_string(remaining()) + " remain");
    }
    auto* out = static_cast<uint8_t*>(dst);
    while (n > 0) {
      if (buf_pos_ == buf_.size()) refill();
      const uint64_t k = std::min<uint64_t>(n, buf_.size() - buf_pos_);
      std::memcpy(out, buf_.data() + buf_pos_, k);
      out += k;
      n -= k;
      buf_pos_ += k;
      pos_ += k;
    }
  }
  template <class T>
  T get(const char* what) {
    T v;
    read(&v, sizeof v, what);
    return v;
  }
  std::string str(const char* what) {
    const uint64_t n = get<uint64_t>(what);
    if (n > remaining()) {
      throw Error(f_.path() + ": corrupt GGUF file: " + what + " claims " + std::to_string(n) +
                  " bytes at byte " + std::to_string(pos_) + ", beyond the end of the file");
    }
    std::string s(n, '\0');
    read(s.data(), n, what);
    return s;
  }

 private:
  void refill() {
    const uint64_t n = std::min<uint64_t>(1 << 20, remaining());
    buf_.resize(n);
    f_.read_at(pos_, buf_.data(), n);
    buf_pos_ = 0;
  }
  const InputFile& f_;
  uint64_t pos_ = 0;
  std::vector<uint8_t> buf_;
  size_t buf_pos_ = 0;
};

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::BOOL:
      return 1;
    case GgufType::U16:
    case GgufType::I16:
      return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32:
      return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64:
      return 8;
    case GgufType::STRING:
      return 8;  // at least the length
    default:
      return 0;
  }
}

nlohmann::json read_scalar(Cursor& c, GgufType t, const std::string& key, const std::string& path) {
  switch (t) {
    case GgufType::U8:
      return c.get<uint8_t>("a value");
    case GgufType::I8:
      return c.get<int8_t>("a value");
    case GgufType::U16:
      return c.get<uint16_t>("a value");
    case GgufType::I16:
      return c.get<int16_t>("a value");
    case GgufType::U32:
      return c.get<uint32_t>("a value");
    case GgufType::I32:
      return c.get<int32_t>("a value");
    case GgufType::F32:
      return c.get<float>("a value");
    case GgufType::BOOL: {
      const uint8_t b = c.get<uint8_t>("a value");
      if (b > 1) throw Error(path + ": metadata \"" + key + "\": bool value " + std::to_string(b));
      return b != 0;
    }
    case GgufType::STRING: {
      std::string s = c.str("a string value");
      // Invalid UTF-8 is kept as JSON-safe text by replacing nothing: nlohmann needs valid
      // UTF-8 only when dumping, which we never do for raw metadata.
      return s;
    }
    case GgufType::U64:
      return c.get<uint64_t>("a value");
    case GgufType::I64:
      return c.get<int64_t>("a value");
    case GgufType::F64:
      return c.get<double>("a value");
    default:
      throw Error(path + ": metadata \"" + key + "\" has unknown value type " +
                  std::to_string(static_cast<uint32_t>(t)));
  }
}

GgufValue read_value(Cursor& c, GgufType t, const std::string& key, const std::string& path) {
  GgufValue v;
  v.type = t;
  if (t != GgufType::ARRAY) {
    v.value = read_scalar(c, t, key, path);
    return v;
  }
  v.elem_type = static_cast<GgufType>(c.get<uint32_t>("an array type"));
  const uint64_t n = c.get<uint64_t>("an array length");
  const size_t es = scalar_size(v.elem_type);
  if (es == 0) {
    throw Error(path + ": metadata \"" + key + "\": arrays of type " +
                std::to_string(static_cast<uint32_t>(v.elem_type)) + " are not supported");
  }
  if (n > kMaxCount * 16 || n * es > c.remaining()) {
    throw Error(path + ": corrupt GGUF file: metadata array \"" + key + "\" claims " +
                std::to_string(n) + " elements, more than the file holds");
  }
  v.value = nlohmann::json::array();
  v.value.get_ref<nlohmann::json::array_t&>().reserve(n);
  for (uint64_t i = 0; i < n; ++i) v.value.push_back(read_scalar(c, v.elem_type, key, path));
  return v;
}

}  // namespace

GgufFile::GgufFile(const std::string& path) : file_(std::make_unique<InputFile>(path)) {
  Cursor c(*file_);
  if (file_->size() < 24 || c.get<uint32_t>("the magic") != kMagic) {
    throw Error(path + ": not a GGUF file (no \"GGUF\" magic)");
  }
  version_ = c.get<uint32_t>("the version");
  if (version_ != 2 && version_ != 3) {
    throw Error(path + ": GGUF version " + std::to_string(version_) + " is not supported (2 or 3)");
  }
  const uint64_t n_tensors = c.get<uint64_t>("the tensor count");
  const uint64_t n_kv = c.get<uint64_t>("the metadata count");
  if (n_tensors > kMaxCount || n_kv > kMaxCount) {
    throw Error(path + ": corrupt GGUF header: " + std::to_string(n_tensors) + " tensors, " +
                std::to_string(n_kv) + " metadata entries");
  }
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = c.str("a metadata key");
    const auto type = static_cast<GgufType>(c.get<uint32_t>("a metadata type"));
    if (kv_.count(key)) throw Error(path + ": metadata key \"" + key + "\" appears twice");
    kv_[key] = read_value(c, type, key, path);
  }
  uint64_t alignment = 32;
  if (const GgufValue* a = get("general.alignment")) {
    if (!a->value.is_number_unsigned() || a->value.get<uint64_t>() == 0 ||
        (a->value.get<uint64_t>() & (a->value.get<uint64_t>() - 1)) != 0) {
      throw Error(path + ": general.alignment must be a power of two, got " + a->value.dump());
    }
    alignment = a->value.get<uint64_t>();
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.str("a tensor name");
    const uint32_t nd = c.get<uint32_t>("a tensor's dimension count");
    if (nd == 0 || nd > 4) {
      throw Error(path + ": tensor \"" + t.name + "\" has " + std::to_string(nd) +
                  " dimensions (1 to 4)");
    }
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t v = c.get<uint64_t>("a tensor dimension");
      if (v == 0 || v > (1ull << 40) || numel > (1ull << 40) / v) {
        throw Error(path + ": tensor \"" + t.name + "\" has an impossible dimension " +
                    std::to_string(v));
      }
      numel *= v;
      t.ne.push_back(v);
    }
    t.type = c.get<uint32_t>("a tensor type");
    t.offset = c.get<uint64_t>("a tensor offset");
    if (!ggml_type_supported(t.type)) {
      throw Error(
          path + ": tensor \"" + t.name + "\" has type " + ggml_type_name(t.type) +
          ", which is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K)");
    }
    const auto gt = static_cast<GgmlType>(t.type);
    if (t.ne[0] % static_cast<uint64_t>(ggml_block_size(gt)) != 0) {
      throw Error(path + ": tensor \"" + t.name + "\": row length " + std::to_string(t.ne[0]) +
                  " is not a multiple of the " + ggml_type_name(t.type) + " block size");
    }
    t.nbytes = ggml_nbytes(gt, numel);
    tensors_.push_back(std::move(t));
  }
  data_start_ = (c.pos() + alignment - 1) / alignment * alignment;
  const uint64_t size = file_->size();
  std::vector<const GgufTensorInfo*> order;
  for (const auto& t : tensors_) {
    if (t.offset % alignment != 0) {
      throw Error(path + ": tensor \"" + t.name + "\" offset " + std::to_string(t.offset) +
                  " is not aligned to " + std::to_string(alignment));
    }
    if (data_start_ > size || t.offset > size - data_start_ ||
        t.nbytes > size - data_start_ - t.offset) {
      throw Error(path + ": tensor \"" + t.name + "\" (" + std::to_string(t.nbytes) +
                  " bytes at offset " + std::to_string(t.offset) +
                  ") lies beyond the end of the file (truncated download?)");
    }
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i]->offset < order[i - 1]->offset + order[i - 1]->nbytes) {
      throw Error(path + ": tensors \"" + order[i - 1]->name + "\" and \"" + order[i]->name +
                  "\" overlap");
    }
  }
}

const GgufTensorInfo* GgufFile::find(const std::string& name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const GgufValue* GgufFile::get(const std::string& key) const {
  const auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

void GgufFile::read_f32(const GgufTensorInfo& t, float* dst) const {
  read_f32_rows(t, 0, static_cast<int64_t>(t.numel() / t.ne[0]), dst);
}

void GgufFile::read_f32_rows(const GgufTensorInfo& t, int64_t row_begin, int64_t rows,
                             float* dst) const {
  const auto type = static_cast<GgmlType>(t.type);
  const auto total_rows = static_cast<int64_t>(t.numel() / t.ne[0]);
  LOMO_ASSERT(row_begin >= 0 && rows >= 0 && row_begin + rows <= total_rows,
              "read_f32_rows: rows out of range");
  const uint64_t row_bytes = ggml_nbytes(type, t.ne[0]);  // whole blocks (checked when parsed)
  std::vector<uint8_t> raw(static_cast<size_t>(rows) * row_bytes);
  file_->read_at(data_start_ + t.offset + static_cast<uint64_t>(row_begin) * row_bytes,
                 raw.data(), raw.size());
  dequantize(type, raw.data(), rows * static_cast<int64_t>(t.ne[0]), dst);
}

bool is_gguf_file(const std::string& path) {
  try {
    InputFile f(path);
    if (f.size() < 4) return false;
    uint32_t m;
    f.read_at(0, &m, 4);
    return m == kMagic;
  } catch (const Error&) {
    return false;
  }
}

namespace {

class Writer {
 public:
  explicit Writer(const ByteSink& sink) : sink_(sink) {}
  void bytes(const void* p, uint64_t n) {
    sink_(p, n);
    pos_ += n;
  }
  template <class T>
  void put(T v) {
    bytes(&v, sizeof v);
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad(uint64_t alignment) {
    static const uint8_t zeros[64] = {};
    while (pos_ % alignment) bytes(zeros, std::min<uint64_t>(64, alignment - pos_ % alignment));
  }
  uint64_t pos() const { return pos_; }

 private:
  const ByteSink& sink_;
  uint64_t pos_ = 0;
};

void write_scalar(Writer& w, GgufType t, const nlohmann::json& v) {
  switch (t) {
    case GgufType::U8:
      w.put<uint8_t>(v.get<uint8_t>());
      break;
    case GgufType::I8:
      w.put<int8_t>(v.get<int8_t>());
      break;
    case GgufType::U16:
      w.put<uint16_t>(v.get<uint16_t>());
      break;
    case GgufType::I16:
      w.put<int16_t>(v.get<int16_t>());
      break;
    case GgufType::U32:
      w.put<uint32_t>(v.get<uint32_t>());
      break;
    case GgufType::I32:
      w.put<int32_t>(v.get<int32_t>());
      break;
    case GgufType::F32:
      w.put<float>(v.get<float>());
      break;
    case GgufType::BOOL:
      w.put<uint8_t>(v.get<bool>() ? 1 : 0);
      break;
    case GgufType::STRING:
      w.str(v.get<std::string>());
      break;
    case GgufType::U64:
      w.put<uint64_t>(v.get<uint64_t>());
      break;
    case GgufType::I64:
      w.put<int64_t>(v.get<int64_t>());
      break;
    case GgufType::F64:
      w.put<double>(v.get<double>());
      break;
    default:
      LOMO_ASSERT(false, "write_scalar: bad type");
  }
}

}  // namespace

void write_gguf(const std::string& path, const std::map<std::string, GgufValue>& metadata,
                const std::vector<GgufTensorOut>& tensors) {
  constexpr uint64_t kAlign = 32;
  write_file_atomic(path, [&](const ByteSink& sink) {
    Writer w(sink);
    w.put<uint32_t>(kMagic);
    w.put<uint32_t>(3);
    w.put<uint64_t>(tensors.size());
    w.put<uint64_t>(metadata.size());
    for (const auto& [key, v] : metadata) {
      w.str(key);
      w.put<uint32_t>(static_cast<uint32_t>(v.type));
      if (v.type == GgufType::ARRAY) {
        w.put<uint32_t>(static_cast<uint32_t>(v.elem_type));
        w.put<uint64_t>(v.value.size());
        for (const auto& e : v.value) write_scalar(w, v.elem_type, e);
      } else {
        write_scalar(w, v.type, v.value);
      }
    }
    uint64_t offset = 0;
    for (const auto& t : tensors) {
      w.str(t.name);
      w.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
      uint64_t n = 1;
      for (uint64_t d : t.ne) {
        w.put<uint64_t>(d);
        n *= d;
      }
      w.put<uint32_t>(static_cast<uint32_t>(t.type));
      w.put<uint64_t>(offset);
      offset += (ggml_nbytes(t.type, n) + kAlign - 1) / kAlign * kAlign;
    }
    w.pad(kAlign);
    std::vector<uint8_t> buf;
    std::vector<float> values;
    for (const auto& t : tensors) {
      uint64_t n = 1;
      for (uint64_t d : t.ne) n *= d;
      values.resize(n);
      t.fill(values.data());
      buf.resize(ggml_nbytes(t.type, n));
      quantize(t.type, values.data(), static_cast<int64_t>(n), buf.data());
      w.bytes(buf.data(), buf.size());
      w.pad(kAlign);
    }
  });
}

}  // namespace lomo
