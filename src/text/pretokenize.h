// Pre-tokenizers of the byte-level BPE family: split text into the pieces BPE runs on, exactly as
// the regular expressions of Hugging Face `tokenizers` (Oniguruma, leftmost-first alternation)
// do. Each pattern is written out as a list of hand-matched alternatives, tried in order at the
// current position:
//   gpt2:   's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
//   llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3}
//           | ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
//   qwen2:  as llama3 with \p{N} (one digit) instead of \p{N}{1,3}
//   smollm: every \p{N} character its own piece (Digits, individual_digits), then gpt2 on the rest
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lomo::text {

enum class PreTokenizer { Gpt2, Llama3, Qwen2, SmolLM };

// llama.cpp's names for them (tokenizer.ggml.pre): "gpt2", "llama-bpe", "qwen2", "smollm".
const char* pre_tokenizer_name(PreTokenizer p);

// [begin, end) spans over `text` (code points), covering it without gaps.
std::vector<std::pair<size_t, size_t>> pre_tokenize(PreTokenizer p, std::u32string_view text);

}  // namespace lomo::text
