// Jinja's lexer, configured as transformers configures it for chat templates
// (ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True), keep_trailing_newline off):
//  * line endings become "\n", and one trailing "\n" of the template is dropped;
//  * `{%-` / `{{-` / `{#-` strip all whitespace before the tag, `-%}` / `-}}` / `-#}` all after;
//  * lstrip_blocks: spaces and tabs between the start of a line and `{%` or `{#` are dropped
//    (`{%+` keeps them); trim_blocks: the newline right after `%}` or `#}` is dropped (`+%}` keeps
//    it); comments `{# ... #}` produce nothing.
// Whitespace means Python's str.isspace() characters, as in Jinja's own regexes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text/jinja_ast.h"

namespace lomo::text::jinja {

struct Token {
  enum class Kind {
    Text,
    BlockBegin,
    BlockEnd,
    VarBegin,
    VarEnd,
    Name,
    Int,
    Float,
    String,
    Op,
    End
  };
  Kind kind = Kind::End;
  std::string text;  // Text, Name, String (unescaped), Op
  int64_t i = 0;     // Int
  double f = 0;      // Float
  Pos pos;
};

// Throws lomo::Error "<where> line L, column C: ..." on a malformed template (an unclosed tag or
// string, a character that starts no token). `where` names the template's source.
std::vector<Token> lex(std::string_view source, const std::string& where);

// Python's str.strip() / lstrip() / rstrip() without arguments, on UTF-8.
std::string_view strip_space(std::string_view s, bool left = true, bool right = true);

}  // namespace lomo::text::jinja
