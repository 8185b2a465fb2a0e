// Next-token cross-entropy over logits. A row whose target is negative carries no loss and
// gets a zero gradient (padding, or the last token of a sequence, which predicts nothing).
// Accumulation rule: both overwrite their outputs; dlogits may alias logits (in place).
#pragma once

#include <cstdint>

namespace lomo {

// nll(N) ← logits(N, V), targets(N): nll_n = logsumexp(logits_n) − logits_n[target_n].
template <class T>
void cross_entropy_forward(T* nll, const T* logits, const int32_t* targets, int64_t N, int64_t V);

// dlogits(N, V) = scale · (softmax(logits_n) − onehot(target_n)); scale = 1/(loss tokens) for a
// mean loss.
template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const int32_t* targets, int64_t N,
                            int64_t V, T scale);

}  // namespace lomo
