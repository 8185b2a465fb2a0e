// Fuzz target: GGUF files (io/gguf.h) and everything that reads one: every tensor dequantised,
// the model config (model/gguf_model.h), the whole model at load, and the embedded tokenizer
// (text/gguf_vocab.h), which then encodes and decodes sample text and is written back as a
// tokenizer.json (what `lomo export` does with it).
#include <vector>

#include "core/error.h"
#include "core/memory.h"
#include "fuzz_util.h"
#include "io/gguf.h"
#include "model/gguf_model.h"
#include "text/bpe.h"
#include "text/gguf_vocab.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lomo;
  const std::string path = fuzz::scratch().write("model.gguf", data, size);
  if (!is_gguf_file(path)) return 0;
  try {
    const GgufFile f(path);
    for (const auto& [key, v] : f.metadata()) {
      if (f.get(key) != &v) std::abort();
    }
    for (const GgufTensorInfo& t : f.tensors()) {
      // numel is bounded by the tensor's bytes, which the reader bounds by the file.
      std::vector<float> v(t.numel());
      f.read_f32(t, v.data());
    }
    try {
      const ModelConfig c = config_from_gguf(f);
      (void)config_to_json(c).dump();
    } catch (const Error&) {
    }
    try {
      std::unique_ptr<text::Tokenizer> tok = text::tokenizer_from_gguf(f);
      if (tok) {
        for (const char* s : fuzz::kSampleTexts) {
          const std::vector<int32_t> ids = tok->encode_document(s);
          (void)tok->decode(ids);
        }
        (void)tok->token_id("<s>");
        if (const auto* bpe = dynamic_cast<const text::BpeTokenizer*>(tok.get())) {
          (void)text::to_tokenizer_json(bpe->parts()).dump();
        }
      }
    } catch (const Error&) {
    }
  } catch (const Error&) {
  }
  for (StorageDtype dtype : {StorageDtype::F32, StorageDtype::BF16}) {
    try {
      MemoryTracker tracker;
      const Model m = load_gguf_model(path, tracker, dtype);
    } catch (const Error&) {
    }
  }
  return 0;
}
