#include "test_run.h"

#include "model/init.h"
#include "nan_backend.h"
#include "test_util.h"

namespace lomo::test {

const char* test_backend_name(TestBackend b) { return b == TestBackend::Cpu ? "cpu" : "nanfill"; }

std::unique_ptr<Backend> make_test_backend(TestBackend b) {
  if (b == TestBackend::NanFill) return std::make_unique<NanFillBackend>();
  return make_backend();
}

namespace {

std::string model_path(const std::string& model) {
  return model.find('/') == std::string::npos ? fixture_dir(model) + "/model" : model;
}

}  // namespace

TestRun::TestRun(const std::string& model_name, StorageDtype dtype, TestBackend b)
    : backend(make_test_backend(b)),
      model(load_model(model_path(model_name), tracker, dtype)),
      net(model.config, model.params, tracker, *backend) {}

TestRun::TestRun(const ModelConfig& c, uint64_t seed, StorageDtype dtype, TestBackend b)
    : backend(make_test_backend(b)),
      model{c, ModelParams(c, tracker, dtype)},
      net(model.config, model.params, tracker, *backend) {
  init_params(model.config, model.params, seed, *backend);
}

TestRun::TestRun(const ModelConfig& c, const ModelParams& weights, StorageDtype dtype)
    : backend(make_test_backend(TestBackend::Cpu)),
      model{c, ModelParams(c, tracker, dtype)},
      net(model.config, model.params, tracker, *backend) {
  for (size_t i = 0; i < model.params.all().size(); ++i) {
    model.params.all()[i].from_f32(weights.all()[i].f());
  }
}

}  // namespace lomo::test
