// LOMO's zero-buffer update of an embedding table (Backend::embedding_update) equals the
// buffered path it replaces — the (V, d) gradient made by embedding_backward (checked by finite
// differences in test_ops_fd.cpp), then sgd_update — for repeated ids, padding, weight decay
// (rows without tokens decay too), fp32 and bf16 storage with either rounding: the same sums in
// the same order and one write-back per element, so bit for bit. Held rows (a 16-bit tied
// table) start from their fp32 values instead of the table.
#include <gtest/gtest.h>

#include <vector>

#include "core/half.h"
#include "core/memory.h"
#include "core/rng.h"
#include "model/params.h"
#include "ops/cpu/embedding.h"
#include "ops/cpu/update.h"

namespace lomo {
namespace embedding_update_test {  // named: a unity build joins test files

constexpr int64_t V = 23, d = 70, N = 19;  // d crosses the 64-element chunks

Param make_table(MemoryTracker& tracker, StorageDtype dtype) {
  Param W;
  W.shape = {V, d};
  W.dtype = dtype;
  W.id = 3;
  W.data = Buffer(tracker, MemCategory::Parameters, V * d * (dtype == StorageDtype::F32 ? 4 : 2));
  std::vector<float> w(V * d);
  for (int64_t i = 0; i < V * d; ++i) w[i] = static_cast<float>(0.3 * counter_normal(9, 1, i));
  W.from_f32(w.data());
  return W;
}

TEST(EmbeddingUpdate, EqualsTheBufferedStepBitForBit) {
  MemoryTracker tracker;
  // Ids with repeats (5 three times, 0 twice), padding (−1), and rows no token names.
  const std::vector<int32_t> ids = {5, 0, 5, -1, 12, 22, 0, 5, 7, -1, 3, 12, 9, 22, 1, 14, 16, 18, 2};
  std::vector<float> dout(N * d);
  for (int64_t i = 0; i < N * d; ++i) dout[i] = static_cast<float>(counter_normal(9, 2, i));
  for (StorageDtype dt : {StorageDtype::F32, StorageDtype::BF16}) {
    for (Rounding rounding : {Rounding::Nearest, Rounding::Stochastic}) {
      for (float keep : {1.0f, 0.99f}) {
        SCOPED_TRACE(std::string(dt == StorageDtype::F32 ? "fp32" : "bf16") + " keep " +
                     std::to_string(keep) +
                     (rounding == Rounding::Nearest ? " nearest" : " stochastic"));
        SgdStep s;
        s.keep = keep;
        s.step = 0.3f;
        s.rounding = {rounding, 11, 4};
        Param a = make_table(tracker, dt), b = make_table(tracker, dt);
        // Buffered: the whole gradient, then the update.
        std::vector<float> g(V * d, 0.0f);
        embedding_backward(g.data(), dout.data(), ids.data(), N, d);
        sgd_update(a.view(), g.data(), s);
        // Zero-buffer.
        std::vector<int32_t> order(N, -7);
        embedding_update(b.view(), dout.data(), ids.data(), N, order.data(), s, HeldRows{});
        std::vector<float> wa(V * d), wb(V * d);
        a.to_f32(wa.data());
        b.to_f32(wb.data());
        for (int64_t i = 0; i < V * d; ++i) ASSERT_EQ(wa[i], wb[i]) << "row " << i / d;
      }
    }
  }
}

TEST(EmbeddingUpdate, HeldRowsStartFromTheirFp32Values) {
  MemoryTracker tracker;
  const std::vector<int32_t> ids = {4, 4, 9, -1, 2};
  const int64_t n = static_cast<int64_t>(ids.size());
  std::vector<float> dout(n * d);
  for (int64_t i = 0; i < n * d; ++i) dout[i] = static_cast<float>(counter_normal(9, 3, i));
  Param W = make_table(tracker, StorageDtype::BF16);
  std::vector<float> w0(V * d);
  W.to_f32(w0.data());
  // Rows 2, 4, 9 held with values the table could not store (fp32 between bf16 codes).
  const int32_t rows[] = {2, 4, 9};
  std::vector<float> held(3 * d);
  for (int64_t i = 0; i < 3 * d; ++i) held[i] = static_cast<float>(counter_normal(9, 4, i));
  SgdStep s;
  s.step = 0.25f;
  s.rounding.rounding = Rounding::Nearest;
  std::vector<int32_t> order(n);
  embedding_update(W.view(), dout.data(), ids.data(), n, order.data(), s,
                   HeldRows{rows, 3, held.data()});
  std::vector<float> w1(V * d);
  W.to_f32(w1.data());
  for (int h = 0; h < 3; ++h) {
    for (int64_t j = 0; j < d; ++j) {
      float g = 0;
      for (int64_t t = 0; t < n; ++t) {
        if (ids[t] == rows[h]) g += dout[t * d + j];
      }
      const float want = bf16_to_f32(f32_to_bf16(held[h * d + j] - s.step * g));
      EXPECT_EQ(w1[rows[h] * d + j], want) << "row " << rows[h];
    }
  }
  for (int64_t v : {0, 1, 3, 22}) {  // not looked up, keep = 1: untouched
    for (int64_t j = 0; j < d; ++j) EXPECT_EQ(w1[v * d + j], w0[v * d + j]);
  }
}

}  // namespace embedding_update_test
}  // namespace lomo
