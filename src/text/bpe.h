// Byte-level BPE (GPT-2 family) from a Hugging Face tokenizer.json.
//
// encode: split off added/special tokens (leftmost-longest match, honouring lstrip/rstrip);
// normalise (NFC when the file says so); pre-tokenize (text/pretokenize.h); map each piece's
// UTF-8 bytes through GPT-2's byte-to-unicode table; then merge adjacent symbols, always the pair
// of lowest merge rank (leftmost on ties), until no listed merge applies. With ignore_merges
// (LLaMA-3) a piece that is itself in the vocabulary is taken whole.
// decode: concatenate token strings, map back to bytes (invalid UTF-8 becomes U+FFFD, as
// String::from_utf8_lossy does); added tokens are copied verbatim.
#pragma once

#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/pretokenize.h"
#include "text/tokenizer.h"

namespace lomo::text {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
};

// Everything that defines a byte-level BPE tokenizer, whichever file it came from.
struct BpeParts {
  std::vector<std::string> tokens;  // id -> token string (byte-level mapped)
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::vector<AddedToken> added;
  PreTokenizer pre = PreTokenizer::Gpt2;
  bool nfc = false;
  bool ignore_merges = false;
  int32_t bos_id = -1, eos_id = -1;
  bool add_bos = false;
};

// Reads a tokenizer.json; `source` names the file in error messages.
BpeParts parse_tokenizer_json(const nlohmann::json& j, const std::string& source);
// A tokenizer.json that Hugging Face `tokenizers` loads and that encodes as these parts do.
nlohmann::json to_tokenizer_json(const BpeParts& parts);

class BpeTokenizer : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeParts parts);
  BpeTokenizer(const nlohmann::json& tokenizer_json, const std::string& source)
      : BpeTokenizer(parse_tokenizer_json(tokenizer_json, source)) {}
  const BpeParts& parts() const { return parts_; }

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  std::string kind() const override;

  int32_t token_id(const std::string& token) const override;

 private:
  void encode_piece(std::string_view mapped, std::vector<int32_t>& out) const;
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;

  BpeParts parts_;
  PreTokenizer pre_;
  bool nfc_ = false;
  bool ignore_merges_ = false;
  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (a, b) -> (rank, merged)
  std::vector<AddedToken> added_;
  std::vector<int> added_index_;               // id -> index into added_, or −1
  std::vector<int> added_by_first_byte_[256];  // indices into added_, longest first
  std::string byte_to_char_[256];
  std::unordered_map<char32_t, uint8_t> char_to_byte_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace lomo::text
