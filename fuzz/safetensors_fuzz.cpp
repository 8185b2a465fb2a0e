// Fuzz target: safetensors files (io/safetensors.h), read on their own and as the weights of a
// model folder (model/loader.h) whose config.json is a fixed tiny LLaMA (fuzz/corpus/safetensors
// holds a valid model.safetensors for it).
#include <vector>

#include "core/error.h"
#include "core/memory.h"
#include "fuzz_util.h"
#include "io/safetensors.h"
#include "model/loader.h"

namespace {

// Keep in step with fuzz/make_seeds.py (TINY_CONFIG).
const char kTinyConfig[] = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 8,
  "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
  "intermediate_size": 16, "vocab_size": 16, "max_position_embeddings": 32})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lomo;
  const auto& s = fuzz::scratch();
  static const bool config_written =
      !s.write("model/config.json", kTinyConfig, sizeof kTinyConfig - 1).empty();
  (void)config_written;
  const std::string path = s.write("model/model.safetensors", data, size);
  try {
    const SafetensorsFile f(path);
    for (const TensorInfo& t : f.tensors()) {
      // The reader guarantees numel·dtype_size bytes inside the file, so these are bounded.
      std::vector<float> v(static_cast<size_t>(t.numel()));
      f.read(t, v.data());
      std::vector<double> d(static_cast<size_t>(t.numel()));
      f.read(t, d.data());
      if (f.find(t.name) == nullptr) std::abort();
    }
  } catch (const Error&) {
  }
  for (StorageDtype dtype : {StorageDtype::F32, StorageDtype::BF16}) {
    try {
      MemoryTracker tracker;
      const Model m = load_model(s.path("model"), tracker, dtype);
    } catch (const Error&) {
    }
  }
  return 0;
}
