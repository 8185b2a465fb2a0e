#include "io/tfrecord.h"

#include <isa-l/crc.h>

namespace lomo {

uint32_t crc32c(const void* data, size_t n) {
  // ISA-L's crc32_iscsi is the bare register update: the caller supplies the initial value and
  // applies the final XOR. It takes an int length, so long inputs go in pieces.
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  uint32_t crc = 0xFFFFFFFFu;
  constexpr size_t kPiece = size_t{1} << 30;
  while (n > 0) {
    const size_t k = n < kPiece ? n : kPiece;
    crc = crc32_iscsi(p, static_cast<int>(k), crc);
    p += k;
    n -= k;
  }
  return crc ^ 0xFFFFFFFFu;
}

uint32_t mask_crc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

namespace {

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

}  // namespace

std::string tfrecord_frame(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, mask_crc32c(crc32c(out.data(), 8)), 4);
  out.append(data);
  put_le(out, mask_crc32c(crc32c(data.data(), data.size())), 4);
  return out;
}

}  // namespace lomo
