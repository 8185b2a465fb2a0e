// The filters, tests, functions and methods of the Jinja subset (the list is in
// text/jinja_eval.h), as jinja2 and transformers define them, on values already evaluated.
// Errors are lomo::Error with a plain message naming the builtin; the renderer adds the position.
// An unknown name is refused with "... is not supported by this chat-template renderer".
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja_ast.h"

namespace lomo::text::jinja {

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

// Arguments matched to `names` as Python binds them (no *args); missing ones are undefined.
std::vector<Value> bind(const CallArgs& args, const std::vector<std::string>& names,
                        const std::string& what);

// `x | f(args)`; strings and lists it builds stay under max_bytes.
Value apply_filter(const std::string& f, const Value& v, const CallArgs& args, size_t max_bytes);
// `x is t(args)`.
bool apply_test(const std::string& t, const Value& v, const CallArgs& args);
// `obj.m(args)` on a string or a dict.
Value call_method(const Value& obj, const std::string& m, const CallArgs& args, size_t max_bytes);
// raise_exception(msg), namespace(...), range(...); `step` is called once per number range()
// makes, so that a range costs what iterating it costs.
bool is_function(const std::string& name);
Value call_function(const std::string& f, const CallArgs& args, const std::function<void()>& step);

}  // namespace lomo::text::jinja
