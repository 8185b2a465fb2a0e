#include "text/text_stream.h"

#include <algorithm>

namespace lomo::text {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace

TextStream::TextStream(const Tokenizer& tok, std::vector<std::string> stop_strings) : tok_(tok) {
  for (auto& s : stop_strings) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

std::string TextStream::push(int32_t id) {
  if (stopped_) return {};
  ids_.push_back(id);
  const std::string full = tok_.decode(ids_);
  size_t end = full.size();
  while (end >= emitted_ + kReplacement.size() &&
         std::string_view(full).substr(end - kReplacement.size(), kReplacement.size()) ==
             kReplacement) {
    end -= kReplacement.size();
  }
  return advance(full, end, /*final=*/false);
}

std::string TextStream::finish() {
  if (stopped_) return {};
  const std::string full = tok_.decode(ids_);
  return advance(full, full.size(), /*final=*/true);
}

std::string TextStream::advance(const std::string& full, size_t end, bool final) {
  if (end < emitted_) end = emitted_;  // cannot happen with a prefix-stable decode; never emit less
  const std::string_view pending = std::string_view(full).substr(emitted_, end - emitted_);
  // The earliest stop string in the pending text. Text before emitted_ holds none: a stop string
  // starting there would have been held back as a prefix.
  size_t cut = std::string::npos;
  for (const auto& s : stops_) cut = std::min(cut, pending.find(s));
  size_t take = pending.size();
  if (cut != std::string::npos) {
    take = cut;
    stopped_ = true;
  } else if (!final) {
    // Hold the longest tail of the pending text that is a proper prefix of a stop string. It
    // starts where a stop string starts, at a code point boundary.
    size_t hold = 0;
    for (const auto& s : stops_) {
      for (size_t k = std::min(s.size() - 1, pending.size()); k > hold; --k) {
        if (pending.substr(pending.size() - k) == std::string_view(s).substr(0, k)) {
          hold = k;
          break;
        }
      }
    }
    take = pending.size() - hold;
  }
  std::string out(pending.substr(0, take));
  emitted_ += take;
  text_ += out;
  return out;
}

}  // namespace lomo::text
