#include "model/default_model.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/error.h"

namespace lomo {

std::string model_cache_dir() {
  if (const char* c = std::getenv("LOMO_CACHE"); c && *c) return c;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/lomo";
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == 0) {
    const passwd* pw = getpwuid(getuid());  // as the fetch script's getent does
    home = pw ? pw->pw_dir : ".";
  }
  return std::string(home) + "/.cache/lomo";
}

std::string default_model_path() {
  return model_cache_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

std::string require_default_model() {
  const std::string p = default_model_path();
  if (!std::filesystem::exists(p)) {
    throw Error("no --model given and the default model is not in the cache (" + p +
                "); run scripts/fetch_model.sh, or pass --model");
  }
  return p;
}

}  // namespace lomo
