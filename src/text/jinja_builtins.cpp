#include "text/jinja_builtins.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "text/jinja_lex.h"
#include "text/jinja_value.h"

namespace lomo::text::jinja {

namespace {

using K = Value::Kind;

bool ascii(const std::string& s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string require_ascii(const std::string& s, const char* what) {
  if (!ascii(s)) {
    throw Error(std::string(what) +
                " of non-ASCII text is not supported (Python's Unicode case tables are not "
                "reproduced here)");
  }
  return s;
}

std::string lower(const std::string& s) {
  std::string r = require_ascii(s, "changing the case");
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}
std::string upper(const std::string& s) {
  std::string r = require_ascii(s, "changing the case");
  for (char& c : r) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return r;
}
std::string capitalize(const std::string& s) {
  std::string r = lower(s);
  if (!r.empty()) r[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(r[0])));
  return r;
}
std::string title(const std::string& s) {  // Python: a letter after a non-letter is upper-cased
  std::string r = require_ascii(s, "changing the case");
  bool prev_letter = false;
  for (char& c : r) {
    const bool letter = std::isalpha(static_cast<unsigned char>(c)) != 0;
    c = static_cast<char>(prev_letter ? std::tolower(static_cast<unsigned char>(c))
                                      : std::toupper(static_cast<unsigned char>(c)));
    prev_letter = letter;
  }
  return r;
}

// str.strip(chars): chars given as a string of code points.
std::string strip_chars(const std::string& s, const std::string& chars, bool left, bool right) {
  const auto set = code_points(chars);
  auto cps = code_points(s);
  size_t b = 0, e = cps.size();
  auto in = [&](const std::string& c) { return std::find(set.begin(), set.end(), c) != set.end(); };
  if (left)
    while (b < e && in(cps[b])) ++b;
  if (right)
    while (e > b && in(cps[e - 1])) --e;
  std::string r;
  for (size_t k = b; k < e; ++k) r += cps[k];
  return r;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to,
                        int64_t count, size_t max_bytes) {
  if (from.empty()) throw Error("replace() with an empty pattern is not supported");
  std::string r;
  size_t i = 0;
  int64_t n = 0;
  while (true) {
    const size_t j = s.find(from, i);
    if (j == std::string::npos || (count >= 0 && n >= count)) break;
    r.append(s, i, j - i);
    r += to;
    if (r.size() > max_bytes) throw Error("replace() grows a string past the output limit");
    i = j + from.size();
    ++n;
  }
  r.append(s, i, std::string::npos);
  return r;
}

const std::string& str_arg(const Value& v, const std::string& what) {
  if (v.kind != K::String) throw Error(what + " must be a string, not " + type_name(v));
  return v.s;
}

int64_t int_arg(const Value& v, const std::string& what) {
  if (v.kind == K::Bool) return v.b;
  if (v.kind != K::Int) throw Error(what + " must be an integer, not " + type_name(v));
  return v.i;
}

}  // namespace

std::vector<Value> bind(const CallArgs& args, const std::vector<std::string>& names,
                        const std::string& what) {
  std::vector<Value> a = args.pos;
  if (a.size() > names.size()) {
    throw Error(what + " takes at most " + std::to_string(names.size()) + " arguments, got " +
                std::to_string(a.size()));
  }
  const size_t given_pos = a.size();
  a.resize(names.size());
  std::vector<bool> given(names.size(), false);
  for (size_t k = 0; k < given_pos; ++k) given[k] = true;
  for (const auto& [kw, x] : args.kw) {
    const auto it = std::find(names.begin(), names.end(), kw);
    if (it == names.end()) throw Error(what + " has no argument `" + kw + "`");
    const size_t k = static_cast<size_t>(it - names.begin());
    if (given[k]) throw Error(what + " got `" + kw + "` twice");
    a[k] = x;
    given[k] = true;
  }
  return a;
}

bool is_function(const std::string& name) {
  return name == "raise_exception" || name == "namespace" || name == "range";
}

Value call_function(const std::string& f, const CallArgs& args, const std::function<void()>& step) {
  if (f == "raise_exception") {
    const auto a = bind(args, {"message"}, "raise_exception()");
    throw Error("the chat template refuses the conversation: " + to_str(a[0]));
  }
  if (f == "namespace") {
    Dict d;
    for (const auto& v : args.pos) {  // namespace({'a': 1}) copies a dict
      if (v.kind != K::Dict || v.is_namespace) throw Error("namespace() takes a dict");
      for (const auto& kv : *v.dict) d.push_back(kv);
    }
    for (const auto& [k, x] : args.kw) d.emplace_back(k, x);
    Value ns = dict_of(std::move(d));
    ns.is_namespace = true;
    return ns;
  }
  if (f == "range") {
    if (!args.kw.empty()) throw Error("range() takes no keyword arguments");
    const auto& a = args.pos;
    if (a.empty() || a.size() > 3) throw Error("range() takes 1 to 3 arguments");
    int64_t lo = 0, hi = 0, st = 1;
    if (a.size() == 1) {
      hi = int_arg(a[0], "range()'s argument");
    } else {
      lo = int_arg(a[0], "range()'s start");
      hi = int_arg(a[1], "range()'s stop");
      if (a.size() == 3) st = int_arg(a[2], "range()'s step");
    }
    if (st == 0) throw Error("range() step must not be zero");
    List l;
    for (int64_t k = lo; st > 0 ? k < hi : k > hi; k += st) {
      if (l.size() >= 1'000'000) throw Error("range() of more than 1000000 numbers");
      step();  // a range costs what iterating it costs
      l.push_back(Value::integer(k));
      if ((st > 0 && k > INT64_MAX - st) || (st < 0 && k < INT64_MIN - st)) break;
    }
    return list_of(std::move(l));
  }
  throw Error("the function `" + f + "()` is not supported by this chat-template renderer");
}

Value call_method(const Value& obj, const std::string& m, const CallArgs& args, size_t max_bytes) {
  const std::string what = std::string(type_name(obj)) + "." + m + "()";
  if (obj.kind == K::String) {
    const std::string& s = obj.s;
    if (m == "strip" || m == "lstrip" || m == "rstrip") {
      const auto a = bind(args, {"chars"}, what);
      const bool l = m != "rstrip", r = m != "lstrip";
      if (a[0].kind == K::Undefined || a[0].kind == K::None)
        return Value::string(std::string(strip_space(s, l, r)));
      return Value::string(strip_chars(s, str_arg(a[0], what), l, r));
    }
    if (m == "upper" || m == "lower" || m == "title" || m == "capitalize") {
      bind(args, {}, what);
      if (m == "upper") return Value::string(upper(s));
      if (m == "lower") return Value::string(lower(s));
      if (m == "title") return Value::string(title(s));
      return Value::string(capitalize(s));
    }
    if (m == "startswith" || m == "endswith") {
      const auto a = bind(args, {"prefix"}, what);
      List options;
      if (a[0].kind == K::List)
        options = *a[0].list;
      else
        options.push_back(a[0]);
      for (const auto& o : options) {
        const std::string& p = str_arg(o, what + "'s argument");
        if (p.size() <= s.size() &&
            (m == "startswith" ? s.compare(0, p.size(), p) == 0
                               : s.compare(s.size() - p.size(), p.size(), p) == 0))
          return Value::boolean(true);
      }
      return Value::boolean(false);
    }
    if (m == "split") {
      const auto a = bind(args, {"sep", "maxsplit"}, what);
      const int64_t maxsplit = a[1].kind == K::Undefined ? -1 : int_arg(a[1], "maxsplit");
      List parts;
      if (a[0].kind == K::Undefined || a[0].kind == K::None) {
        std::string_view rest = strip_space(s, true, false);
        while (!rest.empty()) {
          if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) {
            parts.push_back(Value::string(std::string(strip_space(rest, false, true))));
            break;
          }
          size_t k = 0;
          while (k < rest.size() &&
                 strip_space(rest.substr(k), true, false).size() == rest.size() - k)
            ++k;
          parts.push_back(Value::string(std::string(rest.substr(0, k))));
          rest = strip_space(rest.substr(k), true, false);
        }
      } else {
        const std::string& sep = str_arg(a[0], "split()'s separator");
        if (sep.empty()) throw Error("split() with an empty separator");
        size_t i = 0;
        while (true) {
          const size_t j = s.find(sep, i);
          if (j == std::string::npos ||
              (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit))
            break;
          parts.push_back(Value::string(s.substr(i, j - i)));
          i = j + sep.size();
        }
        parts.push_back(Value::string(s.substr(i)));
      }
      return list_of(std::move(parts));
    }
    if (m == "replace") {
      const auto a = bind(args, {"old", "new", "count"}, what);
      const int64_t count = a[2].kind == K::Undefined ? -1 : int_arg(a[2], "count");
      return Value::string(
          replace_all(s, str_arg(a[0], what), str_arg(a[1], what), count, max_bytes));
    }
  }
  if (obj.kind == K::Dict && !obj.is_namespace) {
    if (m == "items" || m == "keys" || m == "values") {
      bind(args, {}, what);
      List l;
      for (const auto& [k, v] : *obj.dict) {
        if (m == "items")
          l.push_back(list_of({Value::string(k), v}));
        else if (m == "keys")
          l.push_back(Value::string(k));
        else
          l.push_back(v);
      }
      return list_of(std::move(l));
    }
    if (m == "get") {
      const auto a = bind(args, {"key", "default"}, what);
      if (a[0].kind == K::String)
        if (const Value* v = obj.find(a[0].s)) return *v;
      return a[1].kind == K::Undefined ? Value::none() : a[1];
    }
  }
  throw Error("the method " + what + " is not supported by this chat-template renderer");
}

Value apply_filter(const std::string& f, const Value& v, const CallArgs& args, size_t max_bytes) {
  const std::string what = "the filter `" + f + "`";
  if (f == "trim") {
    const auto a = bind(args, {"chars"}, what);
    const std::string s = to_str(v);
    if (a[0].kind == K::Undefined || a[0].kind == K::None)
      return Value::string(std::string(strip_space(s)));
    return Value::string(strip_chars(s, str_arg(a[0], what), true, true));
  }
  if (f == "length" || f == "count") {
    bind(args, {}, what);
    return Value::integer(length(v));
  }
  if (f == "tojson") {
    const auto a = bind(args, {"indent"}, what);
    const int indent = a[0].kind == K::Undefined || a[0].kind == K::None
                           ? -1
                           : static_cast<int>(std::clamp<int64_t>(int_arg(a[0], "indent"), 0, 64));
    std::string s = to_json(v, indent);
    if (s.size() > max_bytes) throw Error("tojson output grows past the output limit");
    return Value::string(std::move(s));
  }
  if (f == "string" || f == "safe") {
    bind(args, {}, what);
    return Value::string(to_str(v));
  }
  if (f == "lower" || f == "upper" || f == "capitalize" || f == "title") {
    bind(args, {}, what);
    const std::string s = to_str(v);
    if (f == "lower") return Value::string(lower(s));
    if (f == "upper") return Value::string(upper(s));
    if (f == "capitalize") return Value::string(capitalize(s));
    return Value::string(title(s));
  }
  if (f == "first" || f == "last") {
    bind(args, {}, what);
    const List all = items(v);
    if (all.empty()) {
      Value u;
      u.s = "the " + f + " item of an empty sequence";
      return u;
    }
    return f == "first" ? all.front() : all.back();
  }
  if (f == "join") {
    const auto a = bind(args, {"d"}, what);
    const std::string sep = a[0].kind == K::Undefined ? "" : to_str(a[0]);
    std::string s;
    bool firsti = true;
    for (const auto& x : items(v)) {
      if (!firsti) s += sep;
      s += to_str(x);
      firsti = false;
      if (s.size() > max_bytes) throw Error("join() grows past the output limit");
    }
    return Value::string(std::move(s));
  }
  if (f == "default" || f == "d") {
    const auto a = bind(args, {"default_value", "boolean"}, what);
    const bool boolean = truthy(a[1]);
    if (v.kind == K::Undefined || (boolean && !truthy(v)))
      return a[0].kind == K::Undefined ? Value::string("") : a[0];
    return v;
  }
  if (f == "list") {
    bind(args, {}, what);
    return list_of(items(v));
  }
  if (f == "reverse") {
    bind(args, {}, what);
    if (v.kind == K::String) {
      auto cps = code_points(v.s);
      std::string s;
      for (auto it = cps.rbegin(); it != cps.rend(); ++it) s += *it;
      return Value::string(std::move(s));
    }
    List l = items(v);
    std::reverse(l.begin(), l.end());
    return list_of(std::move(l));
  }
  if (f == "replace") {
    const auto a = bind(args, {"old", "new", "count"}, what);
    const int64_t count =
        a[2].kind == K::Undefined || a[2].kind == K::None ? -1 : int_arg(a[2], "count");
    return Value::string(
        replace_all(to_str(v), str_arg(a[0], what), str_arg(a[1], what), count, max_bytes));
  }
  if (f == "int") {
    bind(args, {}, what);
    if (v.kind == K::Int) return v;
    if (v.kind == K::Bool) return Value::integer(v.b);
    if (v.kind == K::Float && std::isfinite(v.f) && std::fabs(v.f) < 9e18)
      return Value::integer(static_cast<int64_t>(v.f));
    if (v.kind == K::String) {
      const std::string t(strip_space(v.s));
      char* end = nullptr;
      errno = 0;
      const long long x = std::strtoll(t.c_str(), &end, 10);
      if (!t.empty() && end == t.c_str() + t.size() && errno == 0) return Value::integer(x);
    }
    return Value::integer(0);
  }
  if (f == "float") {
    bind(args, {}, what);
    if (v.kind == K::Float) return v;
    if (v.kind == K::Int || v.kind == K::Bool)
      return Value::real(static_cast<double>(v.kind == K::Bool ? v.b : v.i));
    return Value::real(0.0);
  }
  if (f == "abs") {
    bind(args, {}, what);
    if (v.kind == K::Int) {
      if (v.i == INT64_MIN) throw Error("integer overflow in abs");
      return Value::integer(v.i < 0 ? -v.i : v.i);
    }
    if (v.kind == K::Float) return Value::real(std::fabs(v.f));
    throw Error(std::string("bad operand type for abs(): '") + type_name(v) + "'");
  }
  if (f == "items") {
    bind(args, {}, what);
    if (v.kind == K::Undefined) return list_of({});
    if (v.kind != K::Dict || v.is_namespace) throw Error("the filter `items` needs a dict");
    List l;
    for (const auto& [k, x] : *v.dict) l.push_back(list_of({Value::string(k), x}));
    return list_of(std::move(l));
  }
  throw Error(what + " is not supported by this chat-template renderer");
}

bool apply_test(const std::string& t, const Value& v, const CallArgs& args) {
  const std::string what = "the test `" + t + "`";
  auto one = [&] {
    const auto a = bind(args, {"other"}, what);
    return a[0];
  };
  auto none = [&] { bind(args, {}, what); };
  if (t == "defined") return none(), v.kind != K::Undefined;
  if (t == "undefined") return none(), v.kind == K::Undefined;
  if (t == "none") return none(), v.kind == K::None;
  if (t == "boolean") return none(), v.kind == K::Bool;
  if (t == "true") return none(), v.kind == K::Bool && v.b;
  if (t == "false") return none(), v.kind == K::Bool && !v.b;
  if (t == "integer") return none(), v.kind == K::Int;
  if (t == "float") return none(), v.kind == K::Float;
  if (t == "number") return none(), v.kind == K::Int || v.kind == K::Float || v.kind == K::Bool;
  if (t == "string") return none(), v.kind == K::String;
  if (t == "mapping") return none(), v.kind == K::Dict && !v.is_namespace;
  if (t == "iterable")
    return none(),
           v.kind == K::List || v.kind == K::Dict || v.kind == K::String || v.kind == K::Undefined;
  if (t == "sequence") return none(), v.kind == K::List || v.kind == K::Dict || v.kind == K::String;
  if (t == "odd" || t == "even") {
    none();
    const int64_t x = int_arg(v, what + "'s value");
    return t == "odd" ? (x % 2 != 0) : (x % 2 == 0);
  }
  if (t == "divisibleby") {
    const int64_t d = int_arg(one(), what + "'s argument");
    if (d == 0) throw Error("divisibleby 0");
    const int64_t x = int_arg(v, what + "'s value");
    return d == -1 || x % d == 0;
  }
  if (t == "eq" || t == "equalto" || t == "==") return equals(v, one());
  if (t == "ne" || t == "!=") return !equals(v, one());
  if (t == "lt" || t == "lessthan" || t == "<") return less(v, one());
  if (t == "gt" || t == "greaterthan" || t == ">") return less(one(), v);
  if (t == "le" || t == "<=") return !less(one(), v);
  if (t == "ge" || t == ">=") return !less(v, one());
  if (t == "in") return contains(one(), v);
  if (t == "lower" || t == "upper") {
    none();
    if (v.kind != K::String) return false;
    const std::string s = require_ascii(v.s, "a case test");
    return t == "lower" ? s == lower(s) : s == upper(s);
  }
  throw Error(what + " is not supported by this chat-template renderer");
}

}  // namespace lomo::text::jinja
