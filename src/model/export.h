// Writing models for other tools: GGUF files for llama.cpp (q/k rows permuted back, the
// tokenizer embedded as tokenizer.ggml.*), and Hugging Face folders with the tokenizer files
// transformers needs.
#pragma once

#include <string>

#include "io/ggml_quants.h"
#include "model/loader.h"
#include "text/tokenizer.h"

namespace lomo {

// "f32", "f16", "bf16", "q8_0" -> the ggml type of 2-D weights (1-D tensors stay F32).
GgmlType parse_gguf_out_type(const std::string& s);

// Throws lomo::Error if `config` cannot be written as GGUF (llama3 RoPE scaling, for now), so a
// run can refuse before it trains rather than fail at the end.
void check_gguf_exportable(const ModelConfig& config);

// `source` is the model path the weights came from (a GGUF file's general.* and tokenizer.*
// metadata, chat template included, are carried over); `tok` may be null (no tokenizer written).
// `progress` is told as tensors are written (parameters done, of all).
void export_gguf(const std::string& path, const Model& model, const text::Tokenizer* tok,
                 const std::string& source, GgmlType type, const ProgressFn& progress = {});

// config.json + model.safetensors (fp32) + tokenizer files: copied from a source folder, or
// written (tokenizer.json, tokenizer_config.json, generation_config.json) from a GGUF source.
void export_hf(const std::string& dir, const Model& model, const text::Tokenizer* tok,
               const std::string& source, const ProgressFn& progress = {});

}  // namespace lomo
