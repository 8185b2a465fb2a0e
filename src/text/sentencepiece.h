// SentencePiece (LLaMA-1/2 tokenizer.model) through Debian's libsentencepiece: score-ordered BPE
// merges, byte fallback, "▁" for spaces, exactly as the reference library does.
// Control and unknown pieces written in the text ("<s>", "</s>", "<unk>", as a chat template
// writes them) map to their ids, as transformers' LlamaTokenizer (legacy) splits on its special
// tokens: the text between them is encoded piece by piece, each with its own dummy prefix.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

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
  std::vector<int32_t> encode_plain(std::string_view text) const;

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::vector<std::pair<std::string, int32_t>> specials_;  // control and unknown pieces
};

}  // namespace lomo::text
