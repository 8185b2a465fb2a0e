// The one way tests build a model and what a training step needs: a tracker, a backend, the
// weights (a fixture, a model folder, or a random init of a config) and the network on them.
// Tests that compare two runs build two of these; nothing else repeats the setup.
#pragma once

#include <memory>
#include <string>

#include "model/llama.h"
#include "model/loader.h"
#include "ops/backend.h"
#include "optim/sinks.h"
#include "train/trainer.h"

namespace lomo::test {

// Cpu: the reference backend. NanFill: the CPU with every op's outputs poisoned first
// (tests/nan_backend.h). Far: the CPU with its memory out of the host's reach outside ops
// (tests/far_backend.h); a TestRun on it moves the parameters there, as a GPU run does.
// Cuda: the first GPU (make_test_backend throws lomo::Error, naming why, where there is none:
// see cuda_or_skip_reason).
enum class TestBackend { Cpu, NanFill, Far, Cuda };
const char* test_backend_name(TestBackend b);
std::unique_ptr<Backend> make_test_backend(TestBackend b);
// "" where a CUDA backend can be made here; else why not (no CUDA in this build, no GPU), for
// GTEST_SKIP.
std::string cuda_skip_reason();

class TestRun {
 public:
  // `model`: a fixture name ("llama_gqa") or a path to a model folder or GGUF file.
  explicit TestRun(const std::string& model, StorageDtype dtype = StorageDtype::F32,
                   TestBackend backend = TestBackend::Cpu);
  // The same on a backend the test made (one that injects a fault, say).
  TestRun(const std::string& model, StorageDtype dtype, std::unique_ptr<Backend> backend);
  // A random model of config `c` (init_params with `seed`), for sequences of up to `positions`
  // tokens (0: max_position; LlamaModel).
  TestRun(const ModelConfig& c, uint64_t seed, StorageDtype dtype = StorageDtype::F32,
          TestBackend backend = TestBackend::Cpu, int64_t positions = 0);
  // A model of config `c` holding the values of fp32 `weights` (another run's), stored in `dtype`.
  TestRun(const ModelConfig& c, const ModelParams& weights, StorageDtype dtype);
  TestRun(const TestRun&) = delete;
  TestRun& operator=(const TestRun&) = delete;

  ModelParams& params() { return model.params; }
  const ModelConfig& config() const { return model.config; }
  Trainer trainer(const TrainOptions& opts) { return Trainer(net, opts, tracker); }
  StoredGradients stored_gradients() { return StoredGradients(model.params.all(), tracker, *backend); }

  MemoryTracker tracker;
  std::unique_ptr<Backend> backend;
  Model model;
  LlamaModel net;
};

}  // namespace lomo::test
