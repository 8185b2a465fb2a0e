// Loading and saving Hugging Face model folders (config.json + safetensors, sharded or not).
#pragma once

#include <string>

#include "core/memory.h"
#include "core/progress.h"
#include "model/config.h"
#include "model/params.h"

namespace lomo {

struct Model {
  ModelConfig config;
  ModelParams params;
};

// A GGUF file (model/gguf_model.h), or a Hugging Face folder: reads `dir`/config.json and the
// weights (model.safetensors or the shards listed in model.safetensors.index.json). Every tensor's
// name and shape is checked against the config before any parameter memory is allocated;
// F32/F16/BF16 are converted to fp32.
// 2-D tensors are stored in `dtype` (converted with round-to-nearest as each is read: never a
// second full copy of the weights in memory).
// `progress` is told as each tensor is read (parameters done, of all). A tensor is converted
// through fp32 staging_elems at a time (params.h kStagingElems; for GGUF, whole rows).
Model load_model(const std::string& dir, MemoryTracker& tracker,
                 StorageDtype dtype = StorageDtype::F32, const ProgressFn& progress = {},
                 int64_t staging_elems = kStagingElems);

// Writes DIR/config.json (torch_dtype from the 2-D tensors' `dtype`), creating DIR if needed.
void save_config(const std::string& dir, const ModelConfig& config, StorageDtype dtype);

// Writes config.json and model.safetensors (each tensor in its storage dtype: F32 or BF16) into
// `dir`, creating it if needed. Each file is written to a temporary name and renamed into place, so
// a failure never leaves a torn file.
void save_model(const std::string& dir, const ModelConfig& config, const ModelParams& params,
                const ProgressFn& progress = {});

// The config of a model folder or GGUF file, without reading any weights.
ModelConfig load_model_config(const std::string& path);

// Copies the tokenizer and generation files of a model folder (tokenizer.json, tokenizer.model,
// tokenizer_config.json, special_tokens_map.json, generation_config.json) that exist in `from`,
// so that a saved model is usable at once.
void copy_tokenizer_files(const std::string& from, const std::string& to);

}  // namespace lomo
