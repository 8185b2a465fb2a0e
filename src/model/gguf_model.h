// Models in GGUF files (llama.cpp): hyper-parameters from the "<arch>.*" keys, tensors under
// llama.cpp's names, dequantised to fp32 at load. llama.cpp's converter permutes the rows of the
// q and k projections of LLaMA-architecture models so that RoPE pairs adjacent elements; we undo
// that on load and redo it on export, so the model computes exactly what the same weights
// compute in Hugging Face layout:
//   hf_row[h·hd + j·hd/2 + i] = gguf_row[h·hd + 2i + j]   (heads of q by n_head, of k by n_kv)
#pragma once

#include <string>
#include <vector>

#include "io/gguf.h"
#include "model/loader.h"

namespace lomo {

ModelConfig config_from_gguf(const GgufFile& f);
// Dequantises through fp32 staging of about `staging_elems` (whole rows, whole heads for q and k).
Model load_gguf_model(const std::string& path, MemoryTracker& tracker,
                      StorageDtype dtype = StorageDtype::F32, const ProgressFn& progress = {},
                      int64_t staging_elems = kStagingElems);

// llama.cpp's tensor name for a Hugging Face one ("model.layers.3.mlp.up_proj.weight" ->
// "blk.3.ffn_up.weight").
std::string gguf_tensor_name(const std::string& hf_name);

// Row permutations of a (rows, cols) matrix whose rows are n_heads heads of head_dim.
void gguf_unpermute_rows(float* w, int64_t rows, int64_t cols, int64_t n_heads);
void gguf_permute_rows(float* w, int64_t rows, int64_t cols, int64_t n_heads);

// Whether this architecture's q/k rows are permuted in GGUF (LLaMA yes, Qwen2 no).
bool gguf_permutes_qk(const ModelConfig& c);

}  // namespace lomo
