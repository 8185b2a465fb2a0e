// Python's semantics for the values of a Jinja template: truth, str(), repr(), ==, <, the
// arithmetic operators, and transformers' `tojson` (json.dumps with ensure_ascii=False). Errors
// are lomo::Error with a plain message; the renderer adds the template position.
#pragma once

#include <string>

#include "text/jinja_ast.h"

namespace lomo::text::jinja {

constexpr int kMaxValueDepth = 64;  // lists and dicts nested deeper are refused

const char* type_name(const Value& v);  // Python's: "str", "int", "list", "dict", ...
bool truthy(const Value& v);
std::string to_str(const Value& v);  // str(v); an undefined value prints as ""
std::string repr(const Value& v);
std::string to_json(const Value& v, int indent);  // indent < 0: one line, ", " and ": "
bool equals(const Value& a, const Value& b);
bool less(const Value& a, const Value& b);  // throws for types Python cannot order
// op: + - * / // % ** (`+` joins strings and lists; `*` repeats a string or list). Results
// larger than max_bytes are refused.
Value arith(const std::string& op, const Value& a, const Value& b, size_t max_bytes);
bool contains(const Value& container, const Value& item);  // `item in container`
int64_t length(const Value& v);                            // len(); code points for strings
// What `for x in v` iterates: a list's items, a dict's keys, a string's code points; nothing
// for an undefined value. Throws for anything else.
List items(const Value& v);
// A list of `items` with its depth set; throws past kMaxValueDepth.
Value list_of(List items);
Value dict_of(Dict items);

// UTF-8 code points of s, each as its own string (Python iterates strings by code point).
std::vector<std::string> code_points(const std::string& s);

}  // namespace lomo::text::jinja
