// The typed views ops take instead of model objects: a pointer, its storage type and its shape.
// Pointers are in the memory of the backend that runs the op (host memory for the CPU backend,
// device memory for an accelerator's). Activations and gradients are always fp32 (`float*` with
// the shape in the op's arguments); parameters may be stored in 16 bits, so they travel as
// ParamView.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace lomo {

// A parameter tensor as ops see it: (rows, cols) row-major, or (1, n) for a vector. `id` keys its
// stochastic-rounding stream (core/rounding.h).
struct ParamView {
  void* data = nullptr;
  StorageDtype dtype = StorageDtype::F32;
  int64_t rows = 1, cols = 1;
  int id = 0;
  // The index of data[0] in its whole tensor: a shard's offset (dist/param_shards.h), 0 for a
  // whole tensor. Stochastic rounding keys each element by its index in the whole tensor.
  int64_t first = 0;
  int64_t numel() const { return rows * cols; }
  // Rows [r, r + n) as a view of their own (stochastic rounding still keys the whole tensor).
  ParamView row_block(int64_t r, int64_t n) const {
    return {static_cast<char*>(data) + dtype_bytes(dtype) * r * cols, dtype, n, cols, id,
            first + r * cols};
  }
  // Elements [b, b + n) in storage order, as a (1, n) view (keyed as row_block is).
  ParamView range(int64_t b, int64_t n) const {
    return {static_cast<char*>(data) + dtype_bytes(dtype) * b, dtype, 1, n, id, first + b};
  }
  float* f32() const { return static_cast<float*>(data); }
  uint16_t* u16() const { return static_cast<uint16_t*>(data); }
};

// Rows of a 16-bit tied table kept in fp32 between the two parts of its zero-buffer update: the
// LM head's part writes their updated values to `values` (n, cols) as well as (rounded) to the
// table, and the lookup's part continues from `values`, so each element is rounded once
// (design §2 rule 5). rows(n): the row ids, ascending and distinct (the batch's looked-up ids).
struct HeldRows {
  const int32_t* rows = nullptr;
  int64_t n = 0;
  float* values = nullptr;
};

// One GEMM operand, row-major with `ld` elements between consecutive stored rows.
struct MatRef {
  const void* data = nullptr;
  StorageDtype dtype = StorageDtype::F32;
  int64_t ld = 0;
  // The operand starting at stored element (row, col).
  MatRef at(int64_t row, int64_t col) const {
    const auto off = static_cast<int64_t>(dtype_bytes(dtype)) * (row * ld + col);
    return {static_cast<const char*>(data) + off, dtype, ld};
  }
  static MatRef f32(const float* p, int64_t ld) { return {p, StorageDtype::F32, ld}; }
  static MatRef bf16(const uint16_t* p, int64_t ld) { return {p, StorageDtype::BF16, ld}; }
};

enum class Trans { No, Yes };

// The operands' type of a product; accumulation is fp32 either way. BF16 takes bf16 operands as
// they are (weights as stored, activations rounded once by the caller, who may reuse the copy).
enum class Precision { F32, BF16 };

// C(M,N) = alpha · op(A)(M,K) · op(B)(K,N) + beta · C, every matrix ROW-MAJOR (the one convention
// of the codebase; each backend maps it onto its library in its own gemm wrapper). op(X) = X for
// Trans::No, Xᵀ for Trans::Yes; A is stored (M,K) for No and (K,M) for Yes. beta = 0 overwrites C
// without reading it. In the model: Y = X·Wᵀ is {No, Yes} with W stored (out, in) as in Hugging
// Face; the fused LOMO update W ← beta·W + alpha·dYᵀX is {Yes, No} with C = W.
struct Matmul {
  Trans ta = Trans::No, tb = Trans::No;
  int64_t M = 0, N = 0, K = 0;
  float alpha = 1.0f;
  MatRef A, B;
  float beta = 0.0f;
  float* C = nullptr;
  int64_t ldc = 0;
  Precision precision = Precision::F32;
};

}  // namespace lomo
