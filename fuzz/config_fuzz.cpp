// Fuzz target: config.json (model/config.h). A config that parses must also describe a model
// whose tensor list can be built and counted without overflow or an unbounded allocation (the
// loaders and the memory planner do both before they read any weights), and must write back.
#include "core/error.h"
#include "fuzz_util.h"
#include "model/config.h"
#include "model/params.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lomo;
  const std::string path = fuzz::scratch().write("config.json", data, size);
  try {
    const ModelConfig c = load_config(path);
    const auto specs = expected_params(c);
    int64_t total = 0;
    for (const auto& spec : specs) total += spec_numel(spec);
    if (total != count_params(c)) std::abort();
    (void)config_to_json(c).dump(2);
  } catch (const Error&) {
  }
  return 0;
}
