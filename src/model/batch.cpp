#include "model/batch.h"

#include <algorithm>

#include "core/error.h"

namespace lomo {

Batch make_batch(const std::vector<Sequence>& seqs) {
  Batch b;
  b.B = static_cast<int64_t>(seqs.size());
  for (const auto& s : seqs) b.T = std::max<int64_t>(b.T, static_cast<int64_t>(s.ids.size()));
  b.ids.assign(b.B * b.T, -1);
  b.targets.assign(b.B * b.T, -1);
  for (int64_t i = 0; i < b.B; ++i) {
    const auto& s = seqs[i];
    const int64_t L = static_cast<int64_t>(s.ids.size());
    LOMO_ASSERT(s.loss.empty() || static_cast<int64_t>(s.loss.size()) == L, "loss mask length");
    b.lengths.push_back(static_cast<int32_t>(L));
    for (int64_t t = 0; t < L; ++t) b.ids[i * b.T + t] = s.ids[t];
    for (int64_t t = 0; t + 1 < L; ++t) {
      if (s.loss.empty() || s.loss[t + 1]) {
        b.targets[i * b.T + t] = s.ids[t + 1];
        ++b.loss_tokens;
      }
    }
  }
  return b;
}

SequenceLoss sequence_loss(const Batch& batch, const std::vector<float>& nll, int64_t b) {
  SequenceLoss r;
  for (int64_t t = 0; t < batch.T; ++t) {
    if (batch.targets[b * batch.T + t] >= 0) {
      r.sum += nll[b * batch.T + t];
      ++r.tokens;
    }
  }
  return r;
}

}  // namespace lomo
