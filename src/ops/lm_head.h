// The fused LM head + cross-entropy (the backend op `lm_head_loss`): the (tokens × vocab) logits
// are never materialised whole. Two schedules, chosen by the memory planner (LmHeadTiles::one_pass):
// Two passes (inference, and training when memory is short): tiles of `rows` tokens × `cols`
// vocabulary entries, made against one block of W at a time:
//   pass 1, per tile:  logits = xn_r · W_vᵀ;  running max and Σexp per token (online logsumexp),
//                      and the target's logit when it falls in the block  →  nll, lse;
//   pass 2 (training), per tile, the logits again:  dlogits = scale · (exp(logits − lse) − onehot);
//                      dxn_r (+)= dlogits · W_v;  dW_v (+)= dlogitsᵀ · xn_r.
//   Pass 2 recomputes the head's forward product (one extra 2·N·V·d) instead of holding logits.
// One pass (training): tiles of `rows` tokens × the whole vocabulary: logits, then per row its
//   logsumexp and dlogits in place, then dxn_r = dlogits · W and dW (+)= dlogitsᵀ · xn_r. No
//   product is recomputed; the tile holds rows·V logits, and dW is read and written once per tile.
// A 16-bit W with fp32 products is converted block by block (`cols` rows of W) into `w_block`:
// no fp32 copy of the whole head. With xn16 and tile16 given (bf16 W), the products run in bf16
// instead: W as stored, xn and dlogits rounded to bf16, fp32 accumulation.
// Every read of W (the dxn products of all tiles) precedes the gradient's hand-over, which the
// caller does after checking the loss: the LOMO order rule (design §2 rule 2) holds for the head
// as for every other linear layer (model/linear.h).
// The zero-buffer update (`update` given, two passes, all N rows in one row tile: training with
// LOMO, no gradient buffer at all): in pass 2 a vocabulary block W_v is read for the last time by
// its dxn product, so its update lands right after, inside the dW product itself:
//   W_v ← keep·W_v − step·dlogits_vᵀ·xn   (one GEMM with beta = keep, as model/linear.cpp does),
// in fp32 (W itself, or w_block for a 16-bit head, then written back once with the update's
// rounding at W's element indices). Pass 1 has the loss before pass 2 begins: a non-finite loss
// returns at once, W untouched (design §2 rule 8).
// Accumulation rule: nll, dxn and dW are overwritten; the scratch (tile, w_block, row_stats,
// tile16) holds nothing on entry or exit.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/tensor.h"

namespace lomo {

struct SgdStep;  // ops/backend.h

struct LmHeadTiles {
  int64_t rows = 0;       // tokens per tile
  int64_t cols = 0;       // rows of W per block (and, with two passes, vocabulary entries per tile)
  bool one_pass = false;  // training only: tiles of `rows` tokens × all V entries
  // Elements of the logits tile.
  int64_t tile_elems(int64_t V) const { return rows * (one_pass ? V : cols); }
};

// Two passes: about 1 Mi fp32 logits per tile: all N tokens (up to 4096; every token with
// all_rows, which the zero-buffer update needs) × as many vocabulary entries as fit (at least
// 64). One pass: at most kOnePassTileElems logits per tile, in equal row tiles.
inline constexpr int64_t kOnePassTileElems = int64_t{8} << 20;
LmHeadTiles lm_head_tiles(int64_t V, int64_t N, bool one_pass = false, bool all_rows = false);

struct LmHeadIo {
  const float* xn = nullptr;         // (N, d) final-norm output
  const int32_t* targets = nullptr;  // (N), −1 = no loss
  int64_t N = 0;
  float* nll = nullptr;  // (N) out
  LmHeadTiles tiles;
  float* tile = nullptr;        // (tiles.tile_elems(V)) scratch
  float* w_block = nullptr;     // (tiles.cols, d) scratch, used when W is 16-bit
  double* row_stats = nullptr;  // (N, 2) scratch: running max and Σexp, then lse
  // bf16 products (--bf16-gemm, bf16 W): xn's bf16 copy, and scratch for dlogits in bf16.
  const uint16_t* xn16 = nullptr;  // (N, d)
  uint16_t* tile16 = nullptr;      // (tiles.tile_elems(V))
  // Training only (all null for a forward pass):
  float* dxn = nullptr;  // (N, d) out, overwritten
  float* dW = nullptr;   // (V, d) out, overwritten; null for a frozen head (only dxn flows)
  float grad_scale = 0;  // d(loss)/d(nll_n) for loss rows: grad_scale / loss tokens
  // The zero-buffer update of W instead of dW (dW null; two passes, tiles.rows ≥ N), and for a
  // 16-bit tied table the looked-up rows' fp32 values after it (ops/tensor.h).
  const SgdStep* update = nullptr;
  HeldRows held;
  std::vector<float>* logits_out = nullptr;  // (N, V) host copy for tests, forward only
};

}  // namespace lomo
