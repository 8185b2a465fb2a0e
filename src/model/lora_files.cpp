#include "model/lora_files.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "core/error.h"
#include "io/file.h"
#include "io/safetensors.h"

namespace lomo {

namespace {

const char* kConfigFile = "adapter_config.json";
const char* kWeightsFile = "adapter_model.safetensors";

// A JSON number as float, or the error naming file and field.
float number_field(const nlohmann::json& j, const std::string& key, const std::string& file) {
  if (!j.contains(key) || !j.at(key).is_number()) {
    throw Error(file + ": \"" + key + "\" is missing or not a number");
  }
  return j.at(key).get<float>();
}

// A field that must be absent, null, false or empty for this engine to run the adapter.
void expect_unset(const nlohmann::json& j, const std::string& key, const std::string& file,
                  const std::string& what) {
  if (!j.contains(key)) return;
  const auto& v = j.at(key);
  const bool unset = v.is_null() || (v.is_boolean() && !v.get<bool>()) ||
                     (v.is_object() && v.empty()) || (v.is_array() && v.empty());
  if (!unset) throw Error(file + ": \"" + key + "\" is set; " + what + " is not supported");
}

}  // namespace

void write_peft_adapter(const std::string& dir, const LoraAdapters& adapters,
                        const std::string& base_model) {
  const LoraConfig& cfg = adapters.config();
  nlohmann::ordered_json modules = nlohmann::ordered_json::array();
  for (LoraTarget t : cfg.targets) modules.push_back(lora_target_module(t));
  nlohmann::ordered_json j;
  j["peft_type"] = "LORA";
  j["task_type"] = "CAUSAL_LM";
  j["base_model_name_or_path"] = base_model;
  j["r"] = cfg.rank;
  j["lora_alpha"] = cfg.alpha;
  j["lora_dropout"] = cfg.dropout;
  j["use_rslora"] = cfg.rslora;
  j["target_modules"] = modules;
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  j["modules_to_save"] = nullptr;
  j["layers_to_transform"] = nullptr;
  j["rank_pattern"] = nlohmann::ordered_json::object();
  j["alpha_pattern"] = nlohmann::ordered_json::object();
  j["use_dora"] = false;
  j["revision"] = nullptr;
  std::vector<TensorView> tensors;
  for (const Param& p : adapters.all()) {
    tensors.push_back({p.name, p.shape, p.data.f32(), DType::F32});
  }
  write_safetensors(dir + "/" + kWeightsFile, tensors, {{"format", "pt"}});
  write_file_atomic(dir + "/" + kConfigFile, j.dump(2) + "\n");
}

LoraConfig read_peft_adapter_config(const std::string& dir) {
  const std::string file = dir + "/" + kConfigFile;
  if (!std::filesystem::exists(file)) {
    // A LoRA + LOMO output folder holds the trained model, and its adapters in adapter/.
    const bool nested = std::filesystem::exists(dir + "/adapter/" + kConfigFile);
    throw Error(dir + " is not a PEFT adapter folder: it has no " + kConfigFile +
                (nested ? " (its adapters are in " + dir + "/adapter)" : std::string()));
  }
  nlohmann::json j;
  try {
    std::ifstream in(file);
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(file + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(file + ": not a JSON object");
  if (!j.contains("peft_type") || j.at("peft_type") != "LORA") {
    throw Error(file + ": \"peft_type\" is not \"LORA\"; only LoRA adapters are supported");
  }
  expect_unset(j, "use_dora", file, "DoRA");
  expect_unset(j, "fan_in_fan_out", file, "a transposed (Conv1D) weight layout");
  expect_unset(j, "rank_pattern", file, "a rank per layer");
  expect_unset(j, "alpha_pattern", file, "an alpha per layer");
  expect_unset(j, "layers_to_transform", file, "adapting only some layers");
  expect_unset(j, "modules_to_save", file, "training whole modules beside the adapters");
  expect_unset(j, "layer_replication", file, "replicating layers");
  if (j.contains("bias") && j.at("bias") != "none") {
    throw Error(file + ": \"bias\" is not \"none\"; trained biases are not supported");
  }
  LoraConfig cfg;
  const float r = number_field(j, "r", file);
  if (!(r >= 1 && r <= 65536) || r != std::floor(r)) {
    throw Error(file + ": \"r\" must be an integer in [1, 65536]");
  }
  cfg.rank = static_cast<int64_t>(r);
  cfg.alpha = number_field(j, "lora_alpha", file);
  cfg.dropout = j.contains("lora_dropout") ? number_field(j, "lora_dropout", file) : 0.0f;
  if (j.contains("use_rslora") && !j.at("use_rslora").is_null()) {
    if (!j.at("use_rslora").is_boolean()) throw Error(file + ": \"use_rslora\" is not true or false");
    cfg.rslora = j.at("use_rslora").get<bool>();
  }
  if (!j.contains("target_modules") || !j.at("target_modules").is_array()) {
    throw Error(file + ": \"target_modules\" must be a list of module names (a regular "
                "expression is not supported)");
  }
  std::string list;
  for (const auto& m : j.at("target_modules")) {
    if (!m.is_string()) throw Error(file + ": \"target_modules\" holds a non-string");
    list += (list.empty() ? "" : ",") + m.get<std::string>();
  }
  try {
    cfg.targets = parse_lora_targets(list);
  } catch (const Error& e) {
    throw Error(file + ": " + e.what());
  }
  return cfg;
}

void load_peft_adapter(const std::string& dir, LoraAdapters& adapters) {
  const std::string path = dir + "/" + kWeightsFile;
  if (!std::filesystem::exists(path)) {
    throw Error(dir + " is not a PEFT adapter folder: it has no " + kWeightsFile);
  }
  const SafetensorsFile file(path);
  std::set<std::string> wanted;
  for (const Param& p : adapters.all()) wanted.insert(p.name);
  for (const TensorInfo& t : file.tensors()) {
    if (!wanted.count(t.name)) {
      throw Error(path + ": tensor " + t.name +
                  " is not an adapter of this model and configuration (another model, layer "
                  "count or target list?)");
    }
  }
  for (Param& p : adapters.all()) {
    const TensorInfo* t = file.find(p.name);
    if (t == nullptr) throw Error(path + ": adapter " + p.name + " is missing");
    if (t->shape != p.shape) {
      throw Error(path + ": " + p.name + " has shape " + shape_str(t->shape) + ", expected " +
                  shape_str(p.shape) + " (another rank or model?)");
    }
    float* x = p.data.f32();
    file.read(*t, x);
    for (int64_t i = 0; i < p.numel(); ++i) {
      if (!std::isfinite(x[i])) throw Error(path + ": " + p.name + " holds inf or NaN");
    }
  }
}

LoraAdapters read_peft_adapter(const std::string& dir, const ModelConfig& c,
                               MemoryTracker& tracker) {
  const LoraConfig cfg = read_peft_adapter_config(dir);
  try {
    check_lora_config(cfg, c);
  } catch (const Error& e) {
    throw Error(dir + ": these adapters do not fit the model: " + e.what());
  }
  LoraAdapters a(cfg, c, tracker);
  load_peft_adapter(dir, a);
  return a;
}

}  // namespace lomo
