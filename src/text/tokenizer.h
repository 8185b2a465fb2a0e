// The tokenizer interface: text -> ids -> text. Implementations: byte-level BPE (tokenizer.json,
// text/bpe.h) and SentencePiece (tokenizer.model, text/sentencepiece.h). The GGUF reader adds
// vocabularies embedded in model files through the same interface.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lomo::text {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Ids of `text` without BOS/EOS. Special tokens written in the text (e.g. "<|im_end|>") map
  // to their ids, as in Hugging Face `tokenizers`.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::string kind() const = 0;  // "bpe (smollm)", "sentencepiece", ...
  virtual int32_t token_id(const std::string& token) const = 0;  // −1 if absent

  int32_t bos_id = -1;  // −1: none
  int32_t eos_id = -1;
  bool add_bos = false;  // prepend bos_id when encoding a document or prompt

  // encode() with BOS prepended when the tokenizer's config asks for it.
  std::vector<int32_t> encode_document(std::string_view text) const;
};

// The tokenizer of a GGUF file (its tokenizer.ggml.* metadata) or of a model folder: tokenizer.json
// (byte-level BPE) or tokenizer.model (SentencePiece), with BOS/EOS from tokenizer_config.json,
// generation_config.json and config.json. Returns nullptr when the folder has neither file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir);

}  // namespace lomo::text
