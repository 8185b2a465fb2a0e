#include "text/jinja_lex.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace lomo::text::jinja {

namespace {

// Length of the Python-whitespace character at s[i] (UTF-8), or 0.
size_t space_len(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
  auto at = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0; };
  if (c == 0xc2 && (at(1) == 0x85 || at(1) == 0xa0)) return 2;  // U+0085, U+00A0
  if (c == 0xe1 && at(1) == 0x9a && at(2) == 0x80) return 3;    // U+1680
  if (c == 0xe2 && at(1) == 0x80) {                             // U+2000..200A, 2028/9, 202F
    const unsigned d = at(2);
    if ((d >= 0x80 && d <= 0x8a) || d == 0xa8 || d == 0xa9 || d == 0xaf) return 3;
  }
  if (c == 0xe2 && at(1) == 0x81 && at(2) == 0x9f) return 3;  // U+205F
  if (c == 0xe3 && at(1) == 0x80 && at(2) == 0x80) return 3;  // U+3000
  return 0;
}

// Start of the UTF-8 character that ends at s[end-1].
size_t char_start(std::string_view s, size_t end) {
  size_t k = end - 1;
  while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xc0) == 0x80 && end - k < 4) --k;
  return k;
}

class Lexer {
 public:
  Lexer(std::string_view source, const std::string& where) : where_(where) {
    // Line endings as Jinja normalises them; one trailing newline dropped.
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    size_t i = 0;
    bool strip_next = false;  // the previous tag ended with `-`
    while (true) {
      const size_t j = find_tag(i);
      std::string_view data(src_.data() + i, j - i);
      const size_t data_start = i;
      if (strip_next) {
        data = strip_space(data, true, false);
        strip_next = false;
      }
      if (j == src_.size()) {
        push_text(data, data_start);
        break;
      }
      const char kind = src_[j + 1];  // '{', '%' or '#'
      const char sign = j + 2 < src_.size() ? src_[j + 2] : 0;
      if (sign == '-') {
        data = strip_space(data, false, true);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: only spaces/tabs between the line's start and the tag.
        const size_t nl = data.rfind('\n');
        const size_t lpos = nl == std::string_view::npos ? 0 : nl + 1;
        const bool line_start =
            nl != std::string_view::npos || data_start == 0 || src_[data_start - 1] == '\n';
        if (line_start && std::all_of(data.begin() + lpos, data.end(),
                                      [](char c) { return c == ' ' || c == '\t'; })) {
          data = data.substr(0, lpos);
        }
      }
      push_text(data, data_start);
      size_t k = j + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (kind == '#') {
        const size_t e = src_.find("#}", k);
        if (e == std::string::npos) fail(j, "the comment `{#` is never closed with `#}`");
        const bool minus = e > k && src_[e - 1] == '-';
        i = e + 2;
        if (minus) {
          strip_next = true;
        } else if (i < src_.size() && src_[i] == '\n') {
          ++i;  // trim_blocks
        }
        continue;
      }
      const bool block = kind == '%';
      push(block ? Token::Kind::BlockBegin : Token::Kind::VarBegin, j);
      i = expression(k, block, strip_next);
    }
    push(Token::Kind::End, src_.size());
    return std::move(tokens_);
  }

 private:
  size_t find_tag(size_t i) const {
    while (true) {
      const size_t j = src_.find('{', i);
      if (j == std::string::npos || j + 1 >= src_.size()) return src_.size();
      const char c = src_[j + 1];
      if (c == '{' || c == '%' || c == '#') return j;
      i = j + 1;
    }
  }

  Pos pos_of(size_t off) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), off);
    const size_t line = static_cast<size_t>(it - line_starts_.begin());
    return Pos{static_cast<int>(line), static_cast<int>(off - line_starts_[line - 1] + 1)};
  }

  [[noreturn]] void fail(size_t off, const std::string& what) const {
    const Pos p = pos_of(off);
    throw Error(where_ + " line " + std::to_string(p.line) + ", column " + std::to_string(p.col) +
                ": " + what);
  }

  void push(Token::Kind k, size_t off, std::string text = {}) {
    Token t;
    t.kind = k;
    t.pos = pos_of(off);
    t.text = std::move(text);
    tokens_.push_back(std::move(t));
  }
  void push_text(std::string_view data, size_t off) {
    if (!data.empty()) push(Token::Kind::Text, off, std::string(data));
  }

  // Lexes the inside of a tag from k; returns the offset after its end.
  size_t expression(size_t k, bool block, bool& strip_next) {
    int depth = 0;  // open brackets: `}}` inside a dict literal does not end the tag
    const char* close = block ? "%}" : "}}";
    while (true) {
      while (k < src_.size() && (src_[k] == ' ' || src_[k] == '\t' || src_[k] == '\n')) ++k;
      if (k >= src_.size()) fail(k, std::string("the tag is never closed with `") + close + "`");
      const char c = src_[k];
      // The end of the tag, with its whitespace control.
      for (const char* sign : {"-", "+", ""}) {
        const size_t n = std::strlen(sign);
        if (src_.compare(k, n, sign) == 0 && src_.compare(k + n, 2, close) == 0 &&
            (block || depth == 0)) {
          push(block ? Token::Kind::BlockEnd : Token::Kind::VarEnd, k);
          size_t e = k + n + 2;
          if (*sign == '-') {
            strip_next = true;
          } else if (block && *sign != '+' && e < src_.size() && src_[e] == '\n') {
            ++e;  // trim_blocks
          }
          return e;
        }
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = k;
        while (e < src_.size() &&
               (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_'))
          ++e;
        push(Token::Kind::Name, k, src_.substr(k, e - k));
        k = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        k = number(k);
      } else if (c == '\'' || c == '"') {
        k = string(k);
      } else {
        static const char* const ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*",
                                          "/",  "%",  "~",  "<",  ">",  "=",  "(", ")", "[",
                                          "]",  "{",  "}",  ",",  ".",  ":",  "|"};
        const char* op = nullptr;
        for (const char* o : ops) {
          if (src_.compare(k, std::strlen(o), o) == 0) {
            op = o;
            break;
          }
        }
        if (op == nullptr) {
          fail(k, std::string("unexpected character '") + c + "' in a tag");
        }
        if (*op == '(' || *op == '[' || *op == '{') ++depth;
        if ((*op == ')' || *op == ']' || *op == '}') && depth > 0) --depth;
        push(Token::Kind::Op, k, op);
        k += std::strlen(op);
      }
    }
  }

  size_t number(size_t k) {
    size_t e = k;
    auto digits = [&] {
      while (e < src_.size() &&
             (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_'))
        ++e;
    };
    digits();
    bool real = false;
    if (e + 1 < src_.size() && src_[e] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
      real = true;
      ++e;
      digits();
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t x = e + 1;
      if (x < src_.size() && (src_[x] == '+' || src_[x] == '-')) ++x;
      if (x < src_.size() && std::isdigit(static_cast<unsigned char>(src_[x]))) {
        real = true;
        e = x;
        digits();
      }
    }
    std::string text;
    for (size_t q = k; q < e; ++q)
      if (src_[q] != '_') text += src_[q];
    Token t;
    t.pos = pos_of(k);
    t.text = text;
    if (real) {
      t.kind = Token::Kind::Float;
      t.f = std::strtod(text.c_str(), nullptr);
    } else {
      t.kind = Token::Kind::Int;
      const auto r = std::from_chars(text.data(), text.data() + text.size(), t.i);
      if (r.ec != std::errc() || r.ptr != text.data() + text.size())
        fail(k, "the integer " + text + " does not fit in 64 bits");
    }
    tokens_.push_back(std::move(t));
    return e;
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  // A string literal with Python's escapes (Jinja decodes them with "unicode-escape").
  size_t string(size_t k) {
    const char q = src_[k];
    std::string out;
    size_t e = k + 1;
    while (true) {
      if (e >= src_.size()) fail(k, "the string literal is never closed");
      const char c = src_[e];
      if (c == q) break;
      if (c != '\\') {
        out += c;
        ++e;
        continue;
      }
      if (e + 1 >= src_.size()) fail(k, "the string literal is never closed");
      const char x = src_[e + 1];
      e += 2;
      auto hex = [&](int n) {
        uint32_t v = 0;
        for (int d = 0; d < n; ++d, ++e) {
          if (e >= src_.size() || !std::isxdigit(static_cast<unsigned char>(src_[e])))
            fail(e, std::string("a \\") + x + " escape needs " + std::to_string(n) + " hex digits");
          const char h = src_[e];
          v = v * 16 +
              static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h))
                                        ? h - '0'
                                        : (std::tolower(static_cast<unsigned char>(h)) - 'a' + 10));
        }
        if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) fail(e, "the escape is not a character");
        append_utf8(out, v);
      };
      switch (x) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case '\n':
          break;  // a backslash-newline continues the line
        case 'x':
          hex(2);
          break;
        case 'u':
          hex(4);
          break;
        case 'U':
          hex(8);
          break;
        default:
          if (x >= '0' && x <= '7') {  // up to three octal digits
            uint32_t v = static_cast<uint32_t>(x - '0');
            for (int d = 0; d < 2 && e < src_.size() && src_[e] >= '0' && src_[e] <= '7'; ++d, ++e)
              v = v * 8 + static_cast<uint32_t>(src_[e] - '0');
            append_utf8(out, v);
          } else {
            out += '\\';  // Python keeps an unknown escape as written
            out += x;
          }
      }
    }
    push(Token::Kind::String, k, std::move(out));
    return e + 1;
  }

  std::string where_;
  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace

std::string_view strip_space(std::string_view s, bool left, bool right) {
  if (left) {
    size_t n;
    while (!s.empty() && (n = space_len(s, 0)) > 0) s.remove_prefix(n);
  }
  if (right) {
    while (!s.empty()) {
      const size_t k = char_start(s, s.size());
      if (space_len(s, k) != s.size() - k) break;
      s.remove_suffix(s.size() - k);
    }
  }
  return s;
}

std::vector<Token> lex(std::string_view source, const std::string& where) {
  return Lexer(source, where).run();
}

}  // namespace lomo::text::jinja
