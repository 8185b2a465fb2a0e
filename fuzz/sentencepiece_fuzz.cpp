// Fuzz target: SentencePiece models (tokenizer.model, text/sentencepiece.h), parsed by Debian's
// libsentencepiece. That library is not instrumented, so libFuzzer sees coverage only in our
// wrapper: these runs are mutation-based (from the seed models) rather than coverage-guided
// inside the library; AddressSanitizer still catches its heap errors through the interposed
// allocator, and any crash in it ends the run.
#include "core/error.h"
#include "fuzz_util.h"
#include "text/sentencepiece.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lomo;
  const auto& s = fuzz::scratch();
  const std::string path = s.write("sp/tokenizer.model", data, size);
  try {
    const text::SentencePieceTokenizer tok(path);
    for (const char* t : fuzz::kSampleTexts) (void)tok.decode(tok.encode_document(t));
    std::vector<int32_t> all(static_cast<size_t>(tok.vocab_size()));
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int32_t>(i);
    (void)tok.decode(all);
    (void)tok.token_id("<s>");
    (void)tok.token_id("\xE2\x96\x81the");
  } catch (const Error&) {
  }
  try {
    // The same file found in a model folder.
    const std::unique_ptr<text::Tokenizer> tok = text::load_tokenizer(s.path("sp"));
    if (!tok) std::abort();
  } catch (const Error&) {
  }
  return 0;
}
