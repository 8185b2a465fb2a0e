#include "cli/preamble.h"

#include "model/default_model.h"
#include "train/engine.h"

namespace lomo::cli {

Flag model_flag(std::string help) {
  return {"model", "PATH", std::move(help), "the default model"};
}

Flag threads_flag() {
  return {"threads", "N", "CPU threads", "all cores"};
}

std::string model_preamble(const Args& args, ModelNeed need) {
  if (args.given("model")) return args.str("model");
  return need == ModelNeed::Required ? require_default_model() : "";
}

std::unique_ptr<Backend> backend_from_args(const Args& args) {
  return make_run_backend(
      args.given("threads") ? static_cast<int>(args.integer("threads", 1, 1024)) : 0);
}

}  // namespace lomo::cli
