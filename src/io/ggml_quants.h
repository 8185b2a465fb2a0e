// The ggml tensor types of GGUF files: sizes, dequantisation to fp32, and the few encodings we
// write (F32, F16, BF16, Q8_0). Block layouts and formulas follow ggml's reference C code; the
// tests check every dequantiser bit for bit against the `gguf` Python package.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lomo {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

// "Q4_1", or "type 99" for numbers we do not know.
std::string ggml_type_name(uint32_t type);
// Whether we can dequantise this type.
bool ggml_type_supported(uint32_t type);
// Elements per block and bytes per block (supported types only).
int64_t ggml_block_size(GgmlType t);
int64_t ggml_block_bytes(GgmlType t);
// Bytes of n elements (n a multiple of the block size).
uint64_t ggml_nbytes(GgmlType t, uint64_t n);

// dst[0..n) ← src, n a multiple of the block size.
void dequantize(GgmlType t, const uint8_t* src, int64_t n, float* dst);

// src[0..n) → dst (F32, F16, BF16 or Q8_0; n a multiple of the block size).
void quantize(GgmlType t, const float* src, int64_t n, uint8_t* dst);

}  // namespace lomo
