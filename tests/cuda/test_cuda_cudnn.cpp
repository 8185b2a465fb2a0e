// Attention through cuDNN's SDPA (ops/cuda/attention_cudnn.h). Without a GPU: the rule of which
// shapes it takes, and cudnn-frontend's validate() of the forward and backward graphs of the
// model shapes with the SM version given to the graph (validate() needs no handle and no device
// then; it reads libcudnn's version only). With a GPU: forward and backward against the CPU
// backend on padded GQA batches, with the CPU fed the same bf16-rounded inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "cuda_test_util.h"
#include "ops/cuda/attention_cudnn.h"
#include "ops/cuda/cuda_backend.h"

namespace lomo::test {
namespace {

using cuda::cudnn_sdpa_supported;
using cuda::cudnn_sdpa_validate;
using cuda::SdpaDirection;

TEST(CudnnAttention, SupportedRule) {
  struct Row {
    AttnDims d;
    int sm;
    bool want;
  };
  const Row rows[] = {
      {{1, 512, 32, 32, 128}, 90, true},   // LLaMA-7B
      {{8, 2048, 32, 8, 128}, 80, true},   // GQA 32:8
      {{2, 65, 9, 3, 64}, 86, true},       // SmolLM2-135M
      {{2, 65, 9, 3, 8}, 90, false},       // head_dim 8 test fixtures: the fp32 kernels
      {{1, 33, 4, 1, 40}, 90, false},      // not a multiple of 16
      {{2, 65, 4, 2, 256}, 90, false},     // above 128
      {{1, 512, 32, 32, 128}, 75, false},  // Turing: no bf16 flash attention
      {{1, 512, 32, 32, 128}, 0, false},   // no GPU
      {{1, 512, 32, 12, 128}, 90, false},  // heads not a multiple of kv heads
      {{0, 512, 32, 32, 128}, 90, false},  // empty batch
      {{3, 1, 4, 2, 64}, 90, false},       // one row: cuDNN's backward rejects s_q = s_kv = 1
      {{3, 2, 4, 2, 64}, 90, true},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(cudnn_sdpa_supported(r.d, r.sm), r.want)
        << "B " << r.d.B << " T " << r.d.T << " heads " << r.d.n_head << ":" << r.d.n_kv << " hd "
        << r.d.head_dim << " sm " << r.sm;
  }
}

// Every shape the rule takes validates on Ampere and Hopper, both directions.
TEST(CudnnAttention, GraphsValidateForTheModelShapes) {
  std::vector<AttnDims> shapes;
  for (int64_t B : {1, 2, 4, 8}) {
    for (int64_t T : {512, 1024, 2048}) {
      shapes.push_back({B, T, 32, 32, 128});  // LLaMA-7B
      shapes.push_back({B, T, 32, 8, 128});   // GQA 32:8
    }
  }
  shapes.push_back({2, 65, 9, 3, 64});  // SmolLM2-135M, odd T, GQA 3
  shapes.push_back({3, 2, 4, 2, 64});   // the fewest rows the rule takes
  for (const AttnDims& d : shapes) {
    for (int sm : {80, 90}) {
      ASSERT_TRUE(cudnn_sdpa_supported(d, sm));
      for (SdpaDirection dir : {SdpaDirection::Forward, SdpaDirection::Backward}) {
        EXPECT_EQ(cudnn_sdpa_validate(d, sm, dir), "")
            << (dir == SdpaDirection::Forward ? "forward" : "backward") << " B " << d.B << " T "
            << d.T << " heads " << d.n_head << ":" << d.n_kv << " sm " << sm;
      }
    }
  }
}

// Without a GPU the path takes nothing, whatever the shape, and asks nothing of cuDNN.
TEST(CudnnAttention, TakesNothingWithoutAGpu) {
  std::string reason;
  if (try_cuda_backend(reason) != nullptr) GTEST_SKIP() << "a GPU is present";
  cuda::CudnnAttention a(cuda::CudnnAttention::Use::Bf16);
  const AttnDims d{1, 512, 32, 8, 128};
  EXPECT_FALSE(a.takes(d));
  EXPECT_EQ(a.workspace_elems(d), 0);
  EXPECT_FALSE(
      a.forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, d));
}

// ---- on a GPU --------------------------------------------------------------------------------

// The shapes the device check trains (LLaMA-7B at seq 1024 and 2048, batch 8 × 512; LLaMA-65B at
// seq 512; GQA 32:8) build both graphs within the planned workspace cap, and the backend
// declares for them exactly what `lomo memory --device cuda` plans (ops/cuda/device_plan.h).
TEST(CudnnAttention, PlannedShapesBuildWithinTheCap) {
  std::string reason;
  const std::unique_ptr<Backend> gpu = try_cuda_backend(reason, /*bf16_products=*/true);
  if (!gpu) GTEST_SKIP() << "no CUDA GPU: " << reason;
  cuda::CudnnAttention path(cuda::CudnnAttention::Use::Bf16);
  if (path.sm() < 80) GTEST_SKIP() << "sm_" << path.sm() << ": cuDNN's flash attention needs sm_80";
  const AttnDims shapes[] = {{1, 1024, 32, 32, 128}, {1, 2048, 32, 32, 128},
                             {8, 512, 32, 32, 128},  {1, 512, 64, 64, 128},
                             {8, 2048, 32, 8, 128}};
  for (const AttnDims& d : shapes) {
    SCOPED_TRACE("B " + std::to_string(d.B) + " T " + std::to_string(d.T) + " heads " +
                 std::to_string(d.n_head) + ":" + std::to_string(d.n_kv));
    EXPECT_TRUE(path.takes(d)) << path.last_rejection();
    EXPECT_EQ(path.workspace_elems(d), cuda::attention_workspace_elems(d, true));
    EXPECT_EQ(gpu->attention_workspace_elems(d), cuda::attention_workspace_elems(d, true));
  }
}

std::vector<float> randn_bf16(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = bf16_to_f32(f32_to_bf16(static_cast<float>(nd(g))));
  return v;
}

TEST(CudnnAttention, ForwardAndBackwardMatchTheCpu) {
  LOMO_CUDA_OR_SKIP(gpu);
  auto* cb = dynamic_cast<cuda::CudaBackend*>(gpu.get());
  ASSERT_NE(cb, nullptr);
  const auto cpu = make_backend({.device = "cpu", .threads = 2});
  cuda::CudnnAttention path(cuda::CudnnAttention::Use::Bf16);
  MemoryTracker tracker;
  struct Case {
    AttnDims d;
    std::vector<int32_t> lengths;
  };
  const Case cases[] = {
      {{2, 130, 4, 2, 64}, {130, 77}},
      {{3, 65, 6, 6, 128}, {65, 17, 64}},
      {{2, 256, 8, 2, 128}, {200, 256}},
      {{1, 33, 9, 3, 64}, {33}},
  };
  uint32_t seed = 700;
  for (const Case& c : cases) {
    const AttnDims& d = c.d;
    SCOPED_TRACE("B " + std::to_string(d.B) + " T " + std::to_string(d.T) + " heads " +
                 std::to_string(d.n_head) + ":" + std::to_string(d.n_kv) + " hd " +
                 std::to_string(d.head_dim));
    ASSERT_TRUE(path.takes(d)) << path.last_rejection();
    const int64_t qn = d.B * d.T * d.n_head * d.head_dim;  // (B, T, n_head, hd)
    const int64_t kn = d.B * d.T * d.n_kv * d.head_dim;    // (B, T, n_kv, hd)
    const int64_t sn = attention_stats_elems(d);           // (B, n_head, T, 2)
    const auto q = randn_bf16(qn, ++seed), k = randn_bf16(kn, ++seed), v = randn_bf16(kn, ++seed),
               dout = randn_bf16(qn, ++seed);

    std::vector<float> out_c(qn), st_c(sn), dq_c(qn), dk_c(kn), dv_c(kn);
    std::vector<float> work_c(static_cast<size_t>(cpu->attention_workspace_elems(d)));
    cpu->attention_forward(out_c.data(), st_c.data(), work_c.data(), q.data(), k.data(), v.data(),
                           c.lengths.data(), d);
    cpu->attention_backward(dq_c.data(), dk_c.data(), dv_c.data(), work_c.data(), dout.data(),
                            st_c.data(), q.data(), k.data(), v.data(), c.lengths.data(), d);

    const std::vector<float> nan_q(static_cast<size_t>(qn), NAN),
        nan_k(static_cast<size_t>(kn), NAN);
    GuardedDeviceArray<float> qg(*gpu, tracker, qn), kg(*gpu, tracker, kn), vg(*gpu, tracker, kn),
        dog(*gpu, tracker, qn), out(*gpu, tracker, qn), st(*gpu, tracker, sn),
        dq(*gpu, tracker, qn), dk(*gpu, tracker, kn), dv(*gpu, tracker, kn),
        work(*gpu, tracker, path.workspace_elems(d));
    GuardedDeviceArray<int32_t> lg(*gpu, tracker, d.B);
    qg.upload(q), kg.upload(k), vg.upload(v), dog.upload(dout), lg.upload(c.lengths);
    out.upload(nan_q), dq.upload(nan_q), dk.upload(nan_k), dv.upload(nan_k);
    ASSERT_TRUE(path.forward(cb->stream(), out.data(), st.data(), work.data(), qg.data(), kg.data(),
                             vg.data(), lg.data(), d));
    ASSERT_TRUE(path.backward(cb->stream(), dq.data(), dk.data(), dv.data(), work.data(),
                              dog.data(), st.data(), qg.data(), kg.data(), vg.data(), lg.data(),
                              d));
    cb->synchronize("cuDNN attention test");
    const auto o = out.download(), gq = dq.download(), gk = dk.download(), gv = dv.download();
    // bf16 inputs on both sides; cuDNN rounds P to bf16 for P·V and dP, O to bf16 for D and the
    // results to bf16: errors of a few bf16 ulps (2⁻⁸ relative) of the largest value.
    EXPECT_LE(rel_err(o, out_c), 1e-2);
    EXPECT_LE(rel_err(gq, dq_c), 2e-2);
    EXPECT_LE(rel_err(gk, dk_c), 2e-2);
    EXPECT_LE(rel_err(gv, dv_c), 2e-2);
    // Padding rows: out, dq and the keys' dk, dv are exactly 0.
    ASSERT_NO_FATAL_FAILURE(
        expect_padding_rows_zero(o, gq, gk, gv, c.lengths, d.T, d.n_head, d.n_kv, d.head_dim));
  }
}

}  // namespace
}  // namespace lomo::test
