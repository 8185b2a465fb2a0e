// The fused LM head + cross-entropy: the (tokens × vocab) logits are never materialised. They are
// made one tile at a time — `rows` tokens × `cols` vocabulary entries — against one block of W:
//   pass 1, per tile:  logits = xn_r · W_vᵀ;  running max and Σexp per token (online logsumexp),
//                      and the target's logit when it falls in the block  →  nll, lse;
//   pass 2 (training), per tile, the logits again:  dlogits = scale · (exp(logits − lse) − onehot);
//                      dxn_r (+)= dlogits · W_v;  dW_v (+)= dlogitsᵀ · xn_r.
// Pass 2 recomputes the head's forward product (one extra 2·N·V·d) instead of holding N·V logits.
// A 16-bit W is converted block by block into `w_block` (cols × d): no fp32 copy of the whole head.
// With xn16 and tile16 given (bf16 W), the products run in bf16 instead: W as stored, xn and
// dlogits rounded to bf16, fp32 accumulation (ops/cpu/gemm_bf16.h).
// Every read of W (the dxn products of all tiles) precedes the gradient's hand-over, which the
// caller does after checking the loss: the LOMO order rule (design §2 rule 2) holds for the head
// as for every other linear layer (model/linear.h).
#pragma once

#include <cstdint>
#include <vector>

#include "model/params.h"

namespace lomo {

struct LmHeadTiles {
  int64_t rows = 0;  // tokens per tile
  int64_t cols = 0;  // vocabulary entries per tile (and per W block)
};

// About 1 Mi fp32 logits per tile: all N tokens (up to 4096) × as many vocabulary entries as fit.
LmHeadTiles lm_head_tiles(int64_t V, int64_t N);

struct LmHeadIo {
  const float* xn = nullptr;         // (N, d) final-norm output
  const int32_t* targets = nullptr;  // (N), −1 = no loss
  int64_t N = 0;
  float* nll = nullptr;  // (N) out
  LmHeadTiles tiles;
  float* tile = nullptr;       // (tiles.rows, tiles.cols) scratch
  float* w_block = nullptr;    // (tiles.cols, d) scratch, used when W is 16-bit
  double* row_stats = nullptr;  // (N, 2) scratch: running max and Σexp, then lse
  // bf16 products (--bf16-gemm, bf16 W): xn's bf16 copy, and scratch for dlogits in bf16.
  const uint16_t* xn16 = nullptr;  // (N, d)
  uint16_t* tile16 = nullptr;      // (tiles.rows, tiles.cols)
  // Training only (all null for a forward pass):
  float* dxn = nullptr;  // (N, d) out, overwritten
  float* dW = nullptr;   // (V, d) out, overwritten
  float grad_scale = 0;  // d(loss)/d(nll_n) for loss rows: grad_scale / loss tokens
  std::vector<float>* logits_out = nullptr;  // (N, V) copy for tests, forward only
};

// Returns Σ nll over the rows.
double lm_head_cross_entropy(const Param& W, const LmHeadIo& io);

}  // namespace lomo
