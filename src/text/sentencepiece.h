// SentencePiece (LLaMA-1/2 tokenizer.model) through Debian's libsentencepiece: score-ordered BPE
// merges, byte fallback, "▁" for spaces, exactly as the reference library does.
#pragma once

#include <memory>
#include <string>

#include "text/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace lomo::text {

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& model_path);
  ~SentencePieceTokenizer() override;

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override;
  std::string kind() const override { return "sentencepiece"; }
  int32_t token_id(const std::string& token) const override;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace lomo::text
