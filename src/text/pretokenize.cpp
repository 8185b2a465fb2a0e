#include "text/pretokenize.h"

#include "text/unicode.h"

namespace lomo::text {

const char* pre_tokenizer_name(PreTokenizer p) {
  switch (p) {
    case PreTokenizer::Gpt2:
      return "gpt2";
    case PreTokenizer::Llama3:
      return "llama-bpe";
    case PreTokenizer::Qwen2:
      return "qwen2";
    case PreTokenizer::SmolLM:
      return "smollm";
  }
  return "?";
}

namespace {

using Text = std::u32string_view;

bool is_other(char32_t c) {
  return !is_space(c) && !is_letter(c) && !is_number(c);
}
bool is_newline(char32_t c) {
  return c == '\r' || c == '\n';
}

template <class Pred>
size_t run(Text s, size_t p, Pred pred) {
  size_t q = p;
  while (q < s.size() && pred(s[q])) ++q;
  return q - p;
}

char32_t lower_ascii(char32_t c) {
  return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

// 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive.
size_t contraction(Text s, size_t p, bool ignore_case) {
  if (s[p] != '\'') return 0;
  static const char* const kSuffixes[] = {"s", "t", "re", "ve", "m", "ll", "d"};
  for (const char* suf : kSuffixes) {
    size_t k = 0;
    for (; suf[k]; ++k) {
      if (p + 1 + k >= s.size()) break;
      const char32_t c = ignore_case ? lower_ascii(s[p + 1 + k]) : s[p + 1 + k];
      if (c != static_cast<char32_t>(suf[k])) break;
    }
    if (suf[k] == 0) return 1 + k;
  }
  return 0;
}

// " ?X+" for a class X.
template <class Pred>
size_t space_then_run(Text s, size_t p, Pred pred) {
  if (s[p] == ' ' && p + 1 < s.size() && pred(s[p + 1])) return 1 + run(s, p + 1, pred);
  return run(s, p, pred);
}

// \s+(?!\S): the whitespace run, less its last character when a non-space follows.
size_t spaces_not_before_text(Text s, size_t p) {
  const size_t n = run(s, p, is_space);
  if (n == 0) return 0;
  if (p + n == s.size()) return n;
  return n - 1;
}

size_t match_gpt2(Text s, size_t p) {
  if (size_t n = contraction(s, p, false)) return n;
  if (size_t n = space_then_run(s, p, is_letter)) return n;
  if (size_t n = space_then_run(s, p, is_number)) return n;
  if (size_t n = space_then_run(s, p, is_other)) return n;
  if (size_t n = spaces_not_before_text(s, p)) return n;
  if (size_t n = run(s, p, is_space)) return n;
  return 1;
}

size_t match_llama3(Text s, size_t p, size_t max_digits) {
  if (size_t n = contraction(s, p, true)) return n;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  const char32_t c = s[p];
  if (!is_newline(c) && !is_letter(c) && !is_number(c) && p + 1 < s.size() && is_letter(s[p + 1])) {
    return 1 + run(s, p + 1, is_letter);
  }
  if (size_t n = run(s, p, is_letter)) return n;
  // \p{N}{1,max}
  if (size_t n = run(s, p, is_number)) return n < max_digits ? n : max_digits;
  // ?[^\s\p{L}\p{N}]+[\r\n]*
  {
    size_t q = p;
    if (s[q] == ' ' && q + 1 < s.size() && is_other(s[q + 1])) ++q;
    if (size_t n = run(s, q, is_other)) {
      q += n;
      q += run(s, q, is_newline);
      return q - p;
    }
  }
  // \s*[\r\n]+ : the whitespace run up to and including its last newline.
  {
    const size_t n = run(s, p, is_space);
    for (size_t k = n; k > 0; --k) {
      if (is_newline(s[p + k - 1])) return k;
    }
  }
  if (size_t n = spaces_not_before_text(s, p)) return n;
  if (size_t n = run(s, p, is_space)) return n;
  return 1;
}

template <class Match>
void split_all(Text s, size_t offset, Match match, std::vector<std::pair<size_t, size_t>>& out) {
  size_t p = 0;
  while (p < s.size()) {
    const size_t n = match(s, p);
    out.emplace_back(offset + p, offset + p + n);
    p += n;
  }
}

}  // namespace

std::vector<std::pair<size_t, size_t>> pre_tokenize(PreTokenizer kind, std::u32string_view text) {
  std::vector<std::pair<size_t, size_t>> out;
  switch (kind) {
    case PreTokenizer::Gpt2:
      split_all(text, 0, match_gpt2, out);
      break;
    case PreTokenizer::Llama3:
      split_all(
          text, 0, [](Text s, size_t p) { return match_llama3(s, p, 3); }, out);
      break;
    case PreTokenizer::Qwen2:
      split_all(
          text, 0, [](Text s, size_t p) { return match_llama3(s, p, 1); }, out);
      break;
    case PreTokenizer::SmolLM: {
      size_t start = 0;
      for (size_t i = 0; i <= text.size(); ++i) {
        if (i == text.size() || is_number(text[i])) {
          split_all(text.substr(start, i - start), start, match_gpt2, out);
          if (i < text.size()) out.emplace_back(i, i + 1);
          start = i + 1;
        }
      }
      break;
    }
  }
  return out;
}

}  // namespace lomo::text
