// Tokenizers embedded in GGUF metadata (tokenizer.ggml.*): "gpt2" (byte-level BPE, with
// tokenizer.ggml.pre naming the pre-tokenizer: gpt2/default, llama-bpe, qwen2, smollm). Control
// (type 3) and user-defined (type 4) tokens are matched before pre-tokenization, as added tokens.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "text/tokenizer.h"

namespace lomo::text {

std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufFile& f);

}  // namespace lomo::text
