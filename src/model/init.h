// Random initialisation of a model from its config (as transformers' _init_weights does:
// linear and embedding weights ~ N(0, initializer_range), norm weights 1, biases 0).
#pragma once

#include <cstdint>

#include "model/config.h"
#include "model/params.h"
#include "ops/backend.h"

namespace lomo {

// The normal draws run on `backend`, which must be the one whose memory holds the parameters
// (the host's, the CPU backend, while parameters are loaded on the host).
void init_params(const ModelConfig& c, ModelParams& params, uint64_t seed, Backend& backend);

}  // namespace lomo
