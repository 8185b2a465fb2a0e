#include "io/ggml_quants.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"

namespace lomo {

std::string ggml_type_name(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32:
      return "F32";
    case GgmlType::F16:
      return "F16";
    case GgmlType::Q4_0:
      return "Q4_0";
    case GgmlType::Q4_1:
      return "Q4_1";
    case GgmlType::Q5_0:
      return "Q5_0";
    case GgmlType::Q5_1:
      return "Q5_1";
    case GgmlType::Q8_0:
      return "Q8_0";
    case GgmlType::Q8_1:
      return "Q8_1";
    case GgmlType::Q2_K:
      return "Q2_K";
    case GgmlType::Q3_K:
      return "Q3_K";
    case GgmlType::Q4_K:
      return "Q4_K";
    case GgmlType::Q5_K:
      return "Q5_K";
    case GgmlType::Q6_K:
      return "Q6_K";
    case GgmlType::Q8_K:
      return "Q8_K";
    case GgmlType::BF16:
      return "BF16";
  }
  return "type " + std::to_string(type);
}

bool ggml_type_supported(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
    case GgmlType::Q4_K:
    case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

int64_t ggml_block_size(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
      return 1;
    case GgmlType::Q4_K:
    case GgmlType::Q6_K:
      return 256;
    default:
      return 32;
  }
}

int64_t ggml_block_bytes(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return 4;
    case GgmlType::F16:
    case GgmlType::BF16:
      return 2;
    case GgmlType::Q4_0:
      return 18;  // f16 d, 16 bytes of nibbles
    case GgmlType::Q4_1:
      return 20;  // f16 d, f16 m, 16 bytes
    case GgmlType::Q5_0:
      return 22;  // f16 d, u32 high bits, 16 bytes
    case GgmlType::Q5_1:
      return 24;  // f16 d, f16 m, u32 high bits, 16 bytes
    case GgmlType::Q8_0:
      return 34;  // f16 d, 32 int8
    case GgmlType::Q4_K:
      return 144;  // f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes
    case GgmlType::Q6_K:
      return 210;  // 128 bytes low 4 bits, 64 high 2 bits, 16 int8 scales, f16 d
    default:
      LOMO_ASSERT(false,
                  "block bytes of unsupported type " + ggml_type_name(static_cast<uint32_t>(t)));
  }
}

uint64_t ggml_nbytes(GgmlType t, uint64_t n) {
  return n / static_cast<uint64_t>(ggml_block_size(t)) * static_cast<uint64_t>(ggml_block_bytes(t));
}

namespace {

float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// The 6-bit scale and min of sub-block j of a Q4_K block (ggml's get_scale_min_k4).
void scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void dequant_block(GgmlType t, const uint8_t* b, float* y) {
  switch (t) {
    case GgmlType::Q4_0: {
      const float d = half_at(b);
      const uint8_t* qs = b + 2;
      for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
        y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
      }
      break;
    }
    case GgmlType::Q4_1: {
      const float d = half_at(b), m = half_at(b + 2);
      const uint8_t* qs = b + 4;
      for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
        y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
      }
      break;
    }
    case GgmlType::Q5_0: {
      const float d = half_at(b);
      uint32_t qh;
      std::memcpy(&qh, b + 2, 4);
      const uint8_t* qs = b + 6;
      for (int j = 0; j < 16; ++j) {
        const int x0 = static_cast<int>((qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10)) - 16;
        const int x1 = static_cast<int>((qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
        y[j] = static_cast<float>(x0) * d;
        y[j + 16] = static_cast<float>(x1) * d;
      }
      break;
    }
    case GgmlType::Q5_1: {
      const float d = half_at(b), m = half_at(b + 2);
      uint32_t qh;
      std::memcpy(&qh, b + 4, 4);
      const uint8_t* qs = b + 8;
      for (int j = 0; j < 16; ++j) {
        const int x0 = static_cast<int>((qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10));
        const int x1 = static_cast<int>((qs[j] >> 4) | ((qh >> (j + 12)) & 0x10));
        y[j] = static_cast<float>(x0) * d + m;
        y[j + 16] = static_cast<float>(x1) * d + m;
      }
      break;
    }
    case GgmlType::Q8_0: {
      const float d = half_at(b);
      for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
      break;
    }
    case GgmlType::Q4_K: {
      const float d = half_at(b), dmin = half_at(b + 2);
      const uint8_t* scales = b + 4;
      const uint8_t* q = b + 16;
      int is = 0;
      for (int j = 0; j < 256; j += 64) {
        uint8_t sc, m;
        scale_min_k4(is, scales, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; ++l) y[j + l] = d1 * static_cast<float>(q[l] & 0xF) - m1;
        for (int l = 0; l < 32; ++l) y[j + 32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
        q += 32;
        is += 2;
      }
      break;
    }
    case GgmlType::Q6_K: {
      const uint8_t* ql = b;
      const uint8_t* qh = b + 128;
      const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
      const float d = half_at(b + 208);
      for (int n = 0; n < 256; n += 128) {
        for (int l = 0; l < 32; ++l) {
          const int is = l / 16;
          const int q1 = static_cast<int>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
          const int q2 = static_cast<int>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
          const int q3 = static_cast<int>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
          const int q4 = static_cast<int>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
          y[n + l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
          y[n + l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
          y[n + l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
          y[n + l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
        }
        ql += 64;
        qh += 32;
        sc += 8;
      }
      break;
    }
    default:
      LOMO_ASSERT(false, "dequantize " + ggml_type_name(static_cast<uint32_t>(t)));
  }
}

}  // namespace

void dequantize(GgmlType t, const uint8_t* src, int64_t n, float* dst) {
  switch (t) {
    case GgmlType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = half_at(src + 2 * i);
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    default:
      break;
  }
  const int64_t bs = ggml_block_size(t), bb = ggml_block_bytes(t);
  LOMO_ASSERT(n % bs == 0, "dequantize: n not a multiple of the block size");
  // One pass at load, on the host: file decoding, not device compute (OpenMP lives in ops/cpu).
  for (int64_t blk = 0; blk < n / bs; ++blk) dequant_block(t, src + blk * bb, dst + blk * bs);
}

void quantize(GgmlType t, const float* src, int64_t n, uint8_t* dst) {
  switch (t) {
    case GgmlType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case GgmlType::Q8_0: {
      LOMO_ASSERT(n % 32 == 0, "Q8_0 needs a multiple of 32 elements");
      // ggml's quantize_row_q8_0_ref: d = max|x| / 127, q = round(x / d).
      for (int64_t blk = 0; blk < n / 32; ++blk) {
        const float* x = src + blk * 32;
        uint8_t* b = dst + blk * 34;
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        const uint16_t dh = f32_to_f16(d);
        std::memcpy(b, &dh, 2);
        for (int j = 0; j < 32; ++j)
          b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(x[j] * id)));
      }
      return;
    }
    default:
      LOMO_ASSERT(false, "quantize to " + ggml_type_name(static_cast<uint32_t>(t)));
  }
}

}  // namespace lomo
