// The fused, chunked LM head + cross-entropy: the (tokens × vocab) logits are never
// materialised. Rows are processed C at a time:
//   logits(C, V) = xn_c · Wᵀ;  nll_c;  and when training, in place,
//   dlogits = scale · (softmax − onehot);  dxn_c = dlogits · W;  dW (+)= dlogitsᵀ · xn_c.
// Every read of W (the dxn products of all chunks) precedes the gradient's hand-over, which the
// caller does after checking the loss: the LOMO order rule (design §2 rule 2) holds for the head
// as for every other linear layer (model/linear.h).
#pragma once

#include <cstdint>
#include <vector>

#include "model/params.h"
#include "model/weights.h"

namespace lomo {

struct LmHeadIo {
  const float* xn = nullptr;         // (N, d) final-norm output
  const int32_t* targets = nullptr;  // (N), −1 = no loss
  int64_t N = 0;
  float* nll = nullptr;    // (N) out
  float* chunk = nullptr;  // (C, V) scratch
  int64_t chunk_rows = 0;  // C
  // Training only (all null for a forward pass):
  float* dxn = nullptr;  // (N, d) out, overwritten
  float* dW = nullptr;   // (V, d) out, overwritten (or added to when accumulate_dw)
  bool accumulate_dw = false;
  float grad_scale = 0;  // d(loss)/d(nll_n) for loss rows: grad_scale / loss tokens
  std::vector<float>* logits_out = nullptr;  // (N, V) copy for tests, forward only
};

// Rows per chunk for a vocabulary of V: about 16 MiB of fp32 logits, at least 16 rows.
int64_t lm_head_chunk_rows(int64_t V, int64_t N);

// Returns Σ nll over the rows.
double lm_head_cross_entropy(Param& W, const LmHeadIo& io, WeightCache& wc);

}  // namespace lomo
