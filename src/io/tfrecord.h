// TFRecord framing, the container of TensorBoard's event files. Each record is
//
//   uint64 length | uint32 masked_crc32c(the 8 length bytes) | data | uint32 masked_crc32c(data)
//
// all little-endian. Readers (TensorBoard's included) stop quietly at a truncated last record, so
// a file written one whole record at a time stays readable when its writer is killed midway.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lomo {

// CRC-32C (Castagnoli polynomial 0x1EDC6F41, reflected, initial and final XOR 0xFFFFFFFF): the
// checksum of iSCSI, ext4 and TFRecord. crc32c("123456789") = 0xE3069283. Computed by Intel's
// ISA-L (Debian's libisal), which uses the SSE4.2 crc32 instruction where the CPU has it.
uint32_t crc32c(const void* data, size_t n);

// TFRecord stores CRCs rotated and offset, since a CRC of data that holds CRCs is weak:
// ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2^32).
uint32_t mask_crc32c(uint32_t crc);

// The bytes of one record holding `data`.
std::string tfrecord_frame(std::string_view data);

}  // namespace lomo
