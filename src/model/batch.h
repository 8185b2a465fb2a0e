// A batch of token sequences of different lengths, right-padded to the longest.
#pragma once

#include <cstdint>
#include <vector>

namespace lomo {

struct Sequence {
  std::vector<int32_t> ids;
  // loss[t] = 1 when token t is predicted with loss (t ≥ 1). Empty: every token after the first.
  std::vector<uint8_t> loss;
};

struct Batch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> ids;      // (B, T), −1 at padding
  std::vector<int32_t> targets;  // (B, T): the token position t must predict (t+1's id), or −1
  std::vector<int32_t> lengths;  // (B)
  int64_t loss_tokens = 0;       // number of targets ≥ 0
  // What training divides the summed loss by: 0 means loss_tokens. A data-parallel rank's share
  // of a batch sets the global batch's loss tokens, so that the ranks' losses and gradients sum
  // to the global batch's mean (dist/batch_share.h).
  int64_t loss_denominator = 0;
  int64_t loss_divisor() const { return loss_denominator > 0 ? loss_denominator : loss_tokens; }
};

Batch make_batch(const std::vector<Sequence>& seqs);

// Σ of per-position NLL (B·T, as LlamaModel::forward fills it) over sequence b's loss tokens,
// and their count.
struct SequenceLoss {
  double sum = 0;
  int64_t tokens = 0;
};
SequenceLoss sequence_loss(const Batch& batch, const std::vector<float>& nll, int64_t b);

}  // namespace lomo
