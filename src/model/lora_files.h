// LoRA adapters in PEFT's folder layout, which `peft.PeftModel.from_pretrained` loads onto the
// base model: adapter_config.json (peft_type LORA, r, lora_alpha, lora_dropout, target_modules,
// use_rslora, …) and adapter_model.safetensors (fp32, keys as model/lora.h's peft_key()).
#pragma once

#include <string>

#include "model/config.h"
#include "model/lora.h"

namespace lomo {

// Writes both files into `dir` (which exists), each atomically. `base_model` is recorded as
// base_model_name_or_path.
void write_peft_adapter(const std::string& dir, const LoraAdapters& adapters,
                        const std::string& base_model);

// The LoRA settings of a PEFT adapter folder. Throws lomo::Error, naming the file and the field,
// for what this engine does not run: another peft_type, DoRA, per-layer rank or alpha patterns,
// layers_to_transform, modules_to_save, trained biases, fan_in_fan_out, or a target module that
// is not one of q/k/v/o/gate/up/down_proj.
LoraConfig read_peft_adapter_config(const std::string& dir);

// Reads adapter_model.safetensors into `adapters` (built from read_peft_adapter_config(dir) or
// an equal config). Every adapter must be present with its shape; a tensor the adapters do not
// have (another layer count, a module not targeted) is an error, as is a non-finite value.
void load_peft_adapter(const std::string& dir, LoraAdapters& adapters);

// The adapters of a PEFT folder for a model of config `c`: read_peft_adapter_config,
// check_lora_config against the model, then load_peft_adapter.
LoraAdapters read_peft_adapter(const std::string& dir, const ModelConfig& c,
                               MemoryTracker& tracker);

}  // namespace lomo
