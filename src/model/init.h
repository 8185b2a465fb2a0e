// Random initialisation of a model from its config (as transformers' _init_weights does:
// linear and embedding weights ~ N(0, initializer_range), norm weights 1, biases 0). Tensor i of
// expected_params(c) draws from the counter-based stream (seed, i), so values do not depend on
// threads, on the storage dtype's rounding path, or on whether the model is built in memory or
// streamed to a file.
#pragma once

#include <cstdint>
#include <string>

#include "core/progress.h"
#include "model/config.h"
#include "model/params.h"
#include "ops/backend.h"

namespace lomo {

// dst(n) ← elements [begin, begin + n) of tensor `index` of the model (s =
// expected_params(c)[index]), in fp32, by `backend`'s ops (dst in its memory). Drawn in pieces,
// a tensor equals it drawn whole.
void init_tensor(const ModelConfig& c, const ParamSpec& s, int index, uint64_t seed, float* dst,
                 Backend& backend, int64_t begin, int64_t n);


// The normal draws run on `backend`, which must be the one whose memory holds the parameters
// (the host's, the CPU backend, while parameters are loaded on the host).
void init_params(const ModelConfig& c, ModelParams& params, uint64_t seed, Backend& backend,
                 int64_t staging_elems = kStagingElems);

// init_params' weights made where `params` lives (a GPU's memory) by the backend's own ops —
// bit for bit on the CPU; on a GPU an element may differ in the last fp32 bit before rounding
// (its log and cospi, ops/element/normal.h): fill_normal, fill, and for 16-bit storage one fp32
// scratch of staging_elems (or the largest 16-bit tensor, when smaller; tracked as workspace
// while init runs), each piece stored rounded to nearest as Param::from_f32 does. Nothing passes through host memory: a model larger than the host's RAM
// (LLaMA-65B in bf16 on a 128 GB machine) is made on a GPU that holds it.
void init_params_in_place(const ModelConfig& c, ModelParams& params, uint64_t seed,
                          Backend& backend, MemoryTracker& tracker,
                          const ProgressFn& progress = {},
                          int64_t staging_elems = kStagingElems);

// Bytes of model.safetensors for `c` with 2-D tensors in `dtype` (1-D in fp32).
uint64_t random_model_bytes(const ModelConfig& c, StorageDtype dtype);

// Writes DIR/config.json and DIR/model.safetensors of init_params' model, one tensor in memory
// at a time (a 7B model needs ~0.5 GB, not its 27 GB), so it can make models larger than memory.
void write_random_model(const std::string& dir, const ModelConfig& c, uint64_t seed,
                        StorageDtype dtype, Backend& backend);

}  // namespace lomo
