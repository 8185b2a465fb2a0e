#include "test_run.h"

#include "core/error.h"
#include "model/init.h"
#include "far_backend.h"
#include "nan_backend.h"
#include "test_util.h"

namespace lomo::test {

const char* test_backend_name(TestBackend b) {
  switch (b) {
    case TestBackend::NanFill: return "nanfill";
    case TestBackend::Far: return "far";
    case TestBackend::Cuda: return "cuda";
    default: return "cpu";
  }
}

std::unique_ptr<Backend> make_test_backend(TestBackend b) {
  if (b == TestBackend::NanFill) return std::make_unique<NanFillBackend>();
  if (b == TestBackend::Far) return std::make_unique<FarBackend>();
  if (b == TestBackend::Cuda) return make_backend({.device = "cuda"});
  return make_backend();
}

std::string cuda_skip_reason() {
  try {
    make_backend({.device = "cuda"});
    return "";
  } catch (const Error& e) {
    return std::string("no CUDA GPU: ") + e.what();
  }
}

namespace {

std::string model_path(const std::string& model) {
  return model.find('/') == std::string::npos ? fixture_dir(model) + "/model" : model;
}

// Loaded (or initialised) in host memory, then moved to the backend's memory as a GPU run does.
Model placed(Model m, Backend& backend, MemoryTracker& tracker) {
  if (!(backend.allocator().device() == Device::host())) {
    m.params.move_to(backend.allocator(), backend, tracker);
  }
  return m;
}

Model initialised(const ModelConfig& c, uint64_t seed, StorageDtype dtype, Backend& backend,
                  MemoryTracker& tracker) {
  Model m{c, ModelParams(c, tracker, dtype)};
  init_params(m.config, m.params, seed, backend);
  return placed(std::move(m), backend, tracker);
}

}  // namespace

TestRun::TestRun(const std::string& model_name, StorageDtype dtype, TestBackend b)
    : backend(make_test_backend(b)),
      model(placed(load_model(model_path(model_name), tracker, dtype), *backend, tracker)),
      net(model.config, model.params, tracker, *backend) {}

TestRun::TestRun(const std::string& model_name, StorageDtype dtype,
                 std::unique_ptr<Backend> backend_in)
    : backend(std::move(backend_in)),
      model(placed(load_model(model_path(model_name), tracker, dtype), *backend, tracker)),
      net(model.config, model.params, tracker, *backend) {}

TestRun::TestRun(const ModelConfig& c, uint64_t seed, StorageDtype dtype, TestBackend b,
                 int64_t positions)
    : backend(make_test_backend(b)),
      model(initialised(c, seed, dtype, *backend, tracker)),
      net(model.config, model.params, tracker, *backend, positions) {}

TestRun::TestRun(const ModelConfig& c, const ModelParams& weights, StorageDtype dtype)
    : backend(make_test_backend(TestBackend::Cpu)),
      model{c, ModelParams(c, tracker, dtype)},
      net(model.config, model.params, tracker, *backend) {
  for (size_t i = 0; i < model.params.all().size(); ++i) {
    model.params.all()[i].from_f32(weights.all()[i].f());
  }
}

}  // namespace lomo::test
