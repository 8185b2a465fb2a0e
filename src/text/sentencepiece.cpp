#include "text/sentencepiece.h"

#include <sentencepiece_processor.h>

#include "core/error.h"

namespace lomo::text {

namespace {

// libsentencepiece reports most bad models by status, but some (found by fuzz/: a unigram
// model with an empty piece makes its trie builder throw Darts::Details::Exception) by a C++
// exception of its own; both become a lomo::Error naming the file.
template <class Fn>
auto guarded(const std::string& where, Fn fn) {
  try {
    return fn();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(where + " (libsentencepiece: " + e.what() + ")");
  }
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  const auto st =
      guarded(model_path + ": not a SentencePiece model", [&] { return sp_->Load(model_path); });
  if (!st.ok()) throw Error(model_path + ": not a SentencePiece model (" + st.ToString() + ")");
  for (int id = 0; id < sp_->GetPieceSize(); ++id) {
    if (sp_->IsControl(id) || sp_->IsUnknown(id)) {
      const std::string& piece = sp_->IdToPiece(id);
      if (!piece.empty()) specials_.emplace_back(piece, id);
    }
  }
  bos_id = sp_->bos_id();
  eos_id = sp_->eos_id();
  add_bos = bos_id >= 0;  // LlamaTokenizer's default (add_bos_token = true)
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  size_t i = 0;
  while (i < text.size()) {
    // The leftmost special piece from i (the longest of those starting there).
    size_t at = std::string_view::npos, len = 0;
    int32_t id = -1;
    for (const auto& [piece, pid] : specials_) {
      const size_t k = text.find(piece, i);
      if (k < at || (k == at && k != std::string_view::npos && piece.size() > len)) {
        at = k;
        len = piece.size();
        id = pid;
      }
    }
    const auto chunk = encode_plain(text.substr(i, at == std::string_view::npos ? at : at - i));
    out.insert(out.end(), chunk.begin(), chunk.end());
    if (at == std::string_view::npos) break;
    out.push_back(id);
    i = at + len;
  }
  return out;
}

std::vector<int32_t> SentencePieceTokenizer::encode_plain(std::string_view text) const {
  if (text.empty()) return {};
  std::vector<int> ids;
  const auto st = guarded("SentencePiece encode failed", [&] {
    return sp_->Encode(absl::string_view(text.data(), text.size()), &ids);
  });
  if (!st.ok()) throw Error("SentencePiece encode failed: " + st.ToString());
  return {ids.begin(), ids.end()};
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  const std::vector<int> v(ids.begin(), ids.end());
  for (int id : v) {
    if (id < 0 || id >= sp_->GetPieceSize()) {
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                  std::to_string(sp_->GetPieceSize()) + ")");
    }
  }
  const auto st = guarded("SentencePiece decode failed", [&] { return sp_->Decode(v, &out); });
  if (!st.ok()) throw Error("SentencePiece decode failed: " + st.ToString());
  return out;
}

int32_t SentencePieceTokenizer::token_id(const std::string& token) const {
  const int id = sp_->PieceToId(token);
  return (id == sp_->unk_id() && token != sp_->IdToPiece(id)) ? -1 : id;
}

int64_t SentencePieceTokenizer::vocab_size() const {
  return sp_->GetPieceSize();
}

}  // namespace lomo::text
