// Generated tokens to printable text, one token at a time, for streaming to a terminal: what is
// returned is always whole UTF-8 code points (a character split across tokens is held until its
// last byte arrives), and never the beginning of a stop string that may yet complete (it is held
// until it either completes, and is cut, or cannot anymore).
//
// Each push decodes every generated id so far and returns what is new, so the text is exactly
// tokenizer.decode(all ids) however the tokens fall (SentencePiece's leading-space rule, bytes of
// one character in several byte-fallback tokens). An incomplete character decodes as U+FFFD
// (the tokenizers' lossy rule), so trailing U+FFFDs are held back until a later token completes
// them or the generation ends; finish() then returns them as they are (whole code points).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace lomo::text {

class TextStream {
 public:
  // `tok` must outlive the stream. Empty stop strings are ignored.
  TextStream(const Tokenizer& tok, std::vector<std::string> stop_strings);

  // Adds one generated id; returns the text that may be printed now (possibly empty).
  std::string push(int32_t id);
  // The end of the generation: returns the rest of the text (cut before a stop string).
  std::string finish();
  // A stop string has appeared: the text ends before it, and later pushes return nothing.
  bool stopped() const { return stopped_; }
  // Everything returned so far: the completion, once finish() has been called.
  const std::string& text() const { return text_; }

 private:
  // Emits full[emitted_, end) minus a held stop-string prefix (none when `final`), or up to the
  // first stop string found in full[emitted_, end).
  std::string advance(const std::string& full, size_t end, bool final);

  const Tokenizer& tok_;
  std::vector<std::string> stops_;
  std::vector<int32_t> ids_;
  std::string text_;
  size_t emitted_ = 0;  // bytes of the decoded text returned so far
  bool stopped_ = false;
};

}  // namespace lomo::text
