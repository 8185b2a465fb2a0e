// What the tracked allocator says about each optimizer's memory (design §2 rule 1, §3):
// LOMO holds one gradient (plus the tied embedding's), SGD all of them, AdamW two fp32 states;
// checkpointing trades activation memory for recomputation without changing a single gradient.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>

#include "test_run.h"
#include "train/memory_plan.h"
#include "test_util.h"

namespace lomo {
namespace {

using test::fixture_batch;
using test::fixture_dir;
using test::TestRun;

struct StepMemory {
  size_t peak_gradients, peak_states, peak_activations, param_bytes, largest_bytes, embed_bytes;
};

StepMemory train_one_step(const std::string& fixture, OptimizerKind opt) {
  TestRun run(fixture);
  SafetensorsFile ref(fixture_dir(fixture) + "/reference.safetensors");
  const Batch batch = fixture_batch(ref);
  TrainOptions o;
  o.optimizer = opt;
  o.clip_grad_norm = 1.0f;  // the norm pass must not add gradient memory either
  Trainer trainer = run.trainer(o);
  trainer.step(batch, 0.01, 1);
  const MemoryTracker& tracker = run.tracker;
  const Model& m = run.model;
  StepMemory r{};
  r.peak_gradients = tracker.peak(MemCategory::Gradients);
  r.peak_states = tracker.peak(MemCategory::OptimizerStates);
  r.peak_activations = tracker.peak(MemCategory::Activations);
  r.param_bytes = static_cast<size_t>(m.params.total_numel()) * 4;
  r.embed_bytes = static_cast<size_t>(m.params.embed->numel()) * 4;
  for (const auto& p : m.params.all()) {
    if (m.config.tied_embeddings && &p == m.params.embed) continue;
    r.largest_bytes = std::max(r.largest_bytes, static_cast<size_t>(p.numel()) * 4);
  }
  return r;
}

// The binary's own start-up is small: a CUDA build opens cuBLASLt and NVRTC only when they are
// first called (ops/cuda/cublaslt_api.h, ops/cuda/nvrtc_shim.cpp), so a CPU run does not pay
// their start-up. Linked, they took `lomo --help` from 14 to 43 MiB (libnvrtc) and to 249 MiB
// (libcublasLt) of peak RSS (2026-12-02; a build without CUDA: 10 MiB).
TEST(Memory, TheBinaryStartsWithoutTheGpuLibraries) {
  char arg0[] = LOMO_BINARY;
  char arg1[] = "--help";
  char* argv[] = {arg0, arg1, nullptr};
  posix_spawn_file_actions_t quiet;
  posix_spawn_file_actions_init(&quiet);
  posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, arg0, &quiet, nullptr, argv, environ), 0) << LOMO_BINARY;
  posix_spawn_file_actions_destroy(&quiet);
  int status = 0;
  rusage usage{};
  ASSERT_EQ(wait4(pid, &status, 0, &usage), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "lomo --help ended by a signal";
  EXPECT_EQ(WEXITSTATUS(status), 0);
  const double mib = static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss: KiB
  std::printf("  lomo --help: peak RSS %.1f MiB (limit 32)\n", mib);
  EXPECT_LT(mib, 32.0) << "a library the binary links costs every run this much at start-up";
}

TEST(Memory, LomoHoldsOneGradientUntied) {
  // Untied: peak gradient bytes = bytes of the largest parameter tensor.
  const StepMemory r = train_one_step("llama_gqa", OptimizerKind::Lomo);
  std::printf("  lomo, untied: peak gradients %zu B = largest tensor %zu B (all params %zu B)\n",
              r.peak_gradients, r.largest_bytes, r.param_bytes);
  EXPECT_EQ(r.peak_gradients, r.largest_bytes);
  EXPECT_EQ(r.peak_states, 0u);
}

TEST(Memory, LomoHoldsEmbeddingPlusOneGradientTied) {
  // Tied (design §2 rule 4): the embedding's gradient is held from the LM head (first in
  // backward) to the lookup (last), beside one buffer for every other tensor:
  // peak = bytes(embedding) + max over the other tensors of their bytes.
  const StepMemory r = train_one_step("smollm_tied", OptimizerKind::Lomo);
  std::printf("  lomo, tied: peak gradients %zu B = embedding %zu B + largest other %zu B\n",
              r.peak_gradients, r.embed_bytes, r.largest_bytes);
  EXPECT_EQ(r.peak_gradients, r.embed_bytes + r.largest_bytes);
  EXPECT_LT(r.peak_gradients, r.param_bytes);
}

TEST(Memory, ZeroBufferUpdateLeavesNoLinearGradient) {
  // Buffered, the peak is the largest tensor (an MLP matrix in this config). With the
  // zero-buffer update and no norm pass (which would materialise every gradient first), no
  // matrix has a gradient at all: the peak is the largest norm vector (d_model floats).
  ModelConfig c = parse_config(nlohmann::json{{"architectures", {"LlamaForCausalLM"}},
                                              {"hidden_size", 32},
                                              {"intermediate_size", 256},
                                              {"num_hidden_layers", 2},
                                              {"num_attention_heads", 4},
                                              {"vocab_size", 64},
                                              {"max_position_embeddings", 32}},
                               "test");
  std::vector<Sequence> seqs(2);
  for (int t = 0; t < 12; ++t) seqs[0].ids.push_back(t * 5 % 64), seqs[1].ids.push_back(t * 3 % 64);
  const Batch batch = make_batch(seqs);
  struct Case {
    bool fused;
    float clip_norm;
    size_t want;
    const char* what;
  };
  const size_t mlp = 256 * 32 * 4, norm = 32 * 4;
  for (const Case& k : {Case{false, 0, mlp, "buffered: an MLP matrix"},
                        Case{true, 1.0f, mlp, "zero-buffer with a norm pass: an MLP matrix"},
                        Case{true, 0, norm, "zero-buffer: a norm vector"}}) {
    TestRun run(c, 3);
    TrainOptions o;
    o.fused_gemm_update = k.fused;
    o.clip_grad_norm = k.clip_norm;
    Trainer trainer = run.trainer(o);
    trainer.step(batch, 0.1, 1);
    const size_t peak = run.tracker.peak(MemCategory::Gradients);
    std::printf("  lomo gradients, %s: %zu B\n", k.what, peak);
    EXPECT_EQ(peak, k.want) << k.what;
  }
}

TEST(Memory, ZeroBufferLeavesNoMatrixGradientTiedOrUntied) {
  // Every matrix, the LM head and the (tied) embedding included, takes LOMO's update where its
  // gradient is made: the gradient peak is the largest norm or bias vector (design §2 rule 1).
  for (const char* f : {"llama_gqa", "smollm_tied", "qwen2_bias"}) {
    TestRun run(f);
    SafetensorsFile ref(fixture_dir(f) + "/reference.safetensors");
    TrainOptions o;
    o.fused_gemm_update = true;
    Trainer trainer = run.trainer(o);
    trainer.step(fixture_batch(ref), 0.01, 1);
    size_t largest_vector = 0;
    for (const auto& p : run.model.params.all()) {
      if (p.shape.size() == 1) largest_vector = std::max(largest_vector, size_t(p.numel()) * 4);
    }
    const size_t peak = run.tracker.peak(MemCategory::Gradients);
    std::printf("  %s: peak gradients %zu B = largest norm/bias vector %zu B (parameters %zu B)\n",
                f, peak, largest_vector, size_t(run.model.params.total_numel()) * 4);
    EXPECT_EQ(peak, largest_vector) << f;
  }
}

TEST(Memory, SgdStoresAllGradients) {
  for (const char* f : {"llama_gqa", "smollm_tied"}) {
    const StepMemory r = train_one_step(f, OptimizerKind::Sgd);
    EXPECT_EQ(r.peak_gradients, r.param_bytes) << f;
    EXPECT_EQ(r.peak_states, 0u) << f;
  }
}

TEST(Memory, AdaLomoKeepsFactoredStates) {
  // AdaLomo: gradients as LOMO (one buffer, plus the held tied embedding); states are fp32
  // rows + cols per matrix and one value per element of a vector.
  const StepMemory r = train_one_step("smollm_tied", OptimizerKind::AdaLomo);
  TestRun run("smollm_tied");
  size_t states = 0;
  for (const auto& p : run.params().all()) {
    states += 4 * static_cast<size_t>(p.shape.size() == 2 ? p.shape[0] + p.shape[1] : p.numel());
  }
  std::printf("  adalomo: states %zu B (factored) vs AdamW's %zu B\n", r.peak_states,
              2 * r.param_bytes);
  EXPECT_EQ(r.peak_states, states);
  EXPECT_EQ(r.peak_gradients, r.embed_bytes + r.largest_bytes);
}

TEST(Memory, AdamWKeepsTwoFp32States) {
  const StepMemory r = train_one_step("qwen2_bias", OptimizerKind::AdamW);
  EXPECT_EQ(r.peak_gradients, r.param_bytes);
  EXPECT_EQ(r.peak_states, 2 * r.param_bytes);
}

TEST(Memory, CheckpointingSameGradientsLessActivation) {
  ModelConfig c = parse_config(nlohmann::json{{"architectures", {"LlamaForCausalLM"}},
                                              {"hidden_size", 64},
                                              {"intermediate_size", 160},
                                              {"num_hidden_layers", 8},
                                              {"num_attention_heads", 4},
                                              {"num_key_value_heads", 2},
                                              {"vocab_size", 256},
                                              {"max_position_embeddings", 64}},
                               "test");
  std::vector<Sequence> seqs(4);
  for (int b = 0; b < 4; ++b) {
    for (int t = 0; t < 48 - 7 * b; ++t) seqs[b].ids.push_back((b * 31 + t * 7) % 256);
  }
  const Batch batch = make_batch(seqs);
  // Every block recomputed, none, and 3 of the 8 keeping their activations, all with the
  // two-pass LM head; then the one-pass head (other GEMM shapes: fp32 rounding apart).
  const Checkpointing modes[4] = {Checkpointing::On, Checkpointing{INT64_MAX, true},
                                  Checkpointing{3, true}, Checkpointing{0, false}};
  std::vector<std::vector<float>> grads[4];
  size_t act_peak[4];
  for (int i = 0; i < 4; ++i) {
    TestRun run(c, 7);
    StoredGradients store = run.stored_gradients();
    StoreSink sink(store);
    run.net.forward_backward(batch, sink, modes[i]);
    act_peak[i] = run.tracker.peak(MemCategory::Activations);
    for (auto& p : run.params().all()) {
      grads[i].emplace_back(store.buffer_for(p), store.buffer_for(p) + p.numel());
    }
  }
  std::printf("  activation peak: checkpointing on %s, off %s, 3 of 8 blocks kept %s (batch 4 x 48)\n",
              format_bytes(act_peak[0]).c_str(), format_bytes(act_peak[1]).c_str(),
              format_bytes(act_peak[2]).c_str());
  EXPECT_LT(act_peak[0] * 2, act_peak[1]) << "checkpointing should at least halve activations here";
  EXPECT_LT(act_peak[0], act_peak[2]);
  EXPECT_LT(act_peak[2], act_peak[1]);
  for (size_t p = 0; p < grads[0].size(); ++p) {
    // Recomputation repeats the same fp32 operations in the same order: identical results.
    ASSERT_EQ(grads[0][p], grads[1][p]) << "gradient " << p << " differs with checkpointing";
    ASSERT_EQ(grads[0][p], grads[2][p]) << "gradient " << p << " differs with 3 blocks kept";
    EXPECT_LE(test::rel_inf_error(grads[3][p].data(), grads[0][p].data(), grads[0][p].size()),
              1e-5)
        << "gradient " << p << " differs with the one-pass LM head";
  }
  EXPECT_EQ(act_peak[3], act_peak[0]);  // the head's tile is workspace
}

TEST(Memory, SixteenBitBlockInputsAreRecomputedExactlyAndHalveTheirTerm) {
  // --activation-dtype: the block inputs are stored rounded, and every block computes from the
  // rounded value in forward and in the recomputation alike. So checkpointing on and off give
  // the same gradients bit for bit (a recomputation from the fp32 value would not), the loss
  // moves from the fp32-activation one by about the rounding (not 0: the rounding happens),
  // and the block-input term halves.
  ModelConfig c = parse_config(nlohmann::json{{"architectures", {"LlamaForCausalLM"}},
                                              {"hidden_size", 64},
                                              {"intermediate_size", 160},
                                              {"num_hidden_layers", 6},
                                              {"num_attention_heads", 4},
                                              {"num_key_value_heads", 2},
                                              {"vocab_size", 256},
                                              {"max_position_embeddings", 64}},
                               "test");
  std::vector<Sequence> seqs(3);
  for (int b = 0; b < 3; ++b) {
    for (int t = 0; t < 40 - 9 * b; ++t) seqs[b].ids.push_back((b * 37 + t * 11) % 256);
  }
  const Batch batch = make_batch(seqs);
  const int64_t N = batch.B * batch.T, d = 64, L = 6;
  double fp32_loss = 0;
  size_t fp32_acts = 0;
  for (const StorageDtype act : {StorageDtype::F32, StorageDtype::BF16, StorageDtype::F16}) {
    std::vector<std::vector<float>> grads[2];
    double loss[2];
    size_t acts[2];
    const Checkpointing modes[2] = {Checkpointing::On, Checkpointing{INT64_MAX, true}};
    for (int i = 0; i < 2; ++i) {
      TestRun run(c, 5);
      run.net.set_activation_dtype(act);
      StoredGradients store = run.stored_gradients();
      StoreSink sink(store);
      loss[i] = run.net.forward_backward(batch, sink, modes[i]);
      EXPECT_EQ(run.net.forward(batch), loss[i]) << "forward alone computes the same function";
      acts[i] = run.tracker.peak(MemCategory::Activations);
      for (auto& p : run.params().all()) {
        grads[i].emplace_back(store.buffer_for(p), store.buffer_for(p) + p.numel());
      }
    }
    const char* name = storage_dtype_name(act);
    EXPECT_EQ(loss[0], loss[1]) << name;
    for (size_t p = 0; p < grads[0].size(); ++p) {
      ASSERT_EQ(grads[0][p], grads[1][p]) << name << ": gradient " << p
                                          << " differs between checkpointing on and off";
    }
    if (act == StorageDtype::F32) {
      fp32_loss = loss[0];
      fp32_acts = acts[0];
      continue;
    }
    const double rel = std::fabs(loss[0] - fp32_loss) / fp32_loss;
    std::printf("  %s block inputs: loss %.7f vs fp32 %.7f (relative %.1e), activations %zu B "
                "vs %zu B\n", name, loss[0], fp32_loss, rel, acts[0], fp32_acts);
    EXPECT_GT(rel, 0.0) << name << ": the block inputs were not rounded";
    EXPECT_LT(rel, act == StorageDtype::BF16 ? 1e-2 : 1e-3) << name;
    // (L + 1) block inputs of N·d elements, 4 bytes → 2 (each block 64-byte aligned).
    const auto f32s = [](int64_t n) { return static_cast<size_t>((n + 15) / 16 * 16) * 4; };
    EXPECT_EQ(fp32_acts - acts[0], (L + 1) * (f32s(N * d) - f32s((N * d + 1) / 2))) << name;
  }
}

}  // namespace
}  // namespace lomo
