// Renders a parsed template (text/jinja_parse.h) as jinja2 does inside transformers'
// apply_chat_template: variables are looked up from the innermost scope out (each for-loop
// iteration is a scope of its own; `if` is not), an undefined name prints as "" and is falsy, and
// using it any further (attribute, item, arithmetic, call) is an error.
//
// Filters: trim, length/count, tojson(indent), string, lower, upper, capitalize, title, first,
// last, join, default/d, list, reverse, replace, int, float, abs, items, safe.
// Tests: defined, undefined, none, boolean, true, false, integer, float, number, string,
// mapping, iterable, sequence, odd, even, divisibleby, eq/equalto/==, ne/!=, lt/<, le/<=,
// gt/>, ge/>=, in, lower, upper.
// Functions: raise_exception(msg) (an error carrying msg), namespace(k=v, ...), range(...).
// Methods: str.strip/lstrip/rstrip/upper/lower/title/capitalize/startswith/endswith/split/
// replace, dict.items/keys/values/get. Changing letter case is limited to ASCII text and refused
// on any other.
// Anything else is refused with its name and position. Untrusted templates are bounded: every
// statement and expression evaluated counts against max_steps, output and every string against
// max_bytes, and values nest at most kMaxValueDepth deep.
#pragma once

#include <cstdint>
#include <string>

#include "text/jinja_ast.h"

namespace lomo::text::jinja {

struct Limits {
  int64_t max_steps = 5'000'000;
  size_t max_bytes = size_t{64} << 20;
};

// Throws lomo::Error "<where> line L, column C: ..." (a template's raise_exception() included).
std::string render(const Template& tpl, const Dict& globals, const std::string& where,
                   const Limits& limits = {});

}  // namespace lomo::text::jinja
