// Fuzz target: a model folder's tokenizer.json (text/bpe.h, through text/tokenizer.h's
// load_tokenizer). The input is the file, optionally followed by a NUL byte and text of the
// fuzzer's own to encode (a NUL cannot occur in JSON text, so the seeds stay valid files). The
// tokenizer encodes and decodes that text and the sample texts, decodes every id, and is written
// back as a tokenizer.json (what `lomo export` and `lomo train --out` do).
#include <cstring>
#include <string_view>

#include "core/error.h"
#include "fuzz_util.h"
#include "text/bpe.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lomo;
  const auto* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t json_size = nul ? static_cast<size_t>(nul - data) : size;
  const std::string_view extra =
      nul ? std::string_view(reinterpret_cast<const char*>(nul + 1), size - json_size - 1)
          : std::string_view();
  const auto& s = fuzz::scratch();
  s.write("tok/tokenizer.json", data, json_size);
  try {
    const std::unique_ptr<text::Tokenizer> tok = text::load_tokenizer(s.path("tok"));
    if (!tok) std::abort();  // the folder has a tokenizer.json
    (void)tok->decode(tok->encode_document(extra));
    for (const char* t : fuzz::kSampleTexts) (void)tok->decode(tok->encode_document(t));
    std::vector<int32_t> all(static_cast<size_t>(tok->vocab_size()));
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int32_t>(i);
    (void)tok->decode(all);
    (void)tok->token_id("<|endoftext|>");
    if (const auto* bpe = dynamic_cast<const text::BpeTokenizer*>(tok.get())) {
      (void)text::to_tokenizer_json(bpe->parts()).dump();
    }
  } catch (const Error&) {
  }
  return 0;
}
