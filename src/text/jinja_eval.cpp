#include "text/jinja_eval.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <unordered_map>

#include "core/error.h"
#include "text/jinja_lex.h"
#include "text/jinja_value.h"

namespace lomo::text::jinja {

namespace {

using K = Value::Kind;
using EK = Expr::Kind;
using SK = Stmt::Kind;

// An error that already names its position in the template.
class PositionedError : public Error {
 public:
  using Error::Error;
};

enum class Flow { Normal, Break, Continue };

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

class Renderer {
 public:
  Renderer(const Dict& globals, const std::string& where, const Limits& limits)
      : where_(where), limits_(limits) {
    scopes_.emplace_back();
    for (const auto& [k, v] : globals) scopes_.back()[k] = v;
  }

  std::string run(const Template& tpl) {
    exec(tpl.body);
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(Pos p, const std::string& what) const {
    throw PositionedError(where_ + " line " + std::to_string(p.line) + ", column " +
                          std::to_string(p.col) + ": " + what);
  }

  void step(Pos p) {
    if (++steps_ > limits_.max_steps) {
      fail(p, "the template takes more than " + std::to_string(limits_.max_steps) +
                  " evaluation steps (a runaway loop?)");
    }
  }

  void emit(const std::string& s, Pos p) {
    if (out_.size() + s.size() > limits_.max_bytes) {
      fail(p, "the output grows past " + std::to_string(limits_.max_bytes) + " bytes");
    }
    out_ += s;
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      const auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    Value u;
    u.s = "'" + name + "'";
    return u;
  }

  Flow exec(const Body& body) {
    for (const auto& s : body) {
      const Flow f = exec(*s);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  Flow exec(const Stmt& s) {
    step(s.pos);
    switch (s.kind) {
      case SK::Text:
        emit(s.text, s.pos);
        return Flow::Normal;
      case SK::Output:
        emit(to_str(eval(*s.expr)), s.pos);
        return Flow::Normal;
      case SK::If:
        for (const auto& [cond, body] : s.branches)
          if (truthy(eval(*cond))) return exec(body);
        return exec(s.else_body);
      case SK::For:
        return exec_for(s);
      case SK::Set: {
        Value v = eval(*s.expr);
        if (s.attr.empty()) {
          scopes_.back()[s.targets[0]] = std::move(v);
          return Flow::Normal;
        }
        Value ns = lookup(s.targets[0]);
        if (!ns.is_namespace) {
          fail(s.pos, "`{% set " + s.targets[0] + "." + s.attr + " = ... %}`: " + s.targets[0] +
                          " is not a namespace() (only namespaces can be changed)");
        }
        if (v.is_namespace) fail(s.pos, "a namespace cannot be stored in a namespace here");
        for (auto& [k, x] : *ns.dict) {
          if (k == s.attr) {
            x = std::move(v);
            return Flow::Normal;
          }
        }
        ns.dict->emplace_back(s.attr, std::move(v));
        return Flow::Normal;
      }
      case SK::Break:
        return Flow::Break;
      case SK::Continue:
        return Flow::Continue;
    }
    return Flow::Normal;
  }

  // The items of a list are shared, not copied (lists never change in place).
  std::shared_ptr<const List> items_of(const Value& v, Pos p) {
    if (v.kind == K::List) return v.list;
    return std::make_shared<const List>(iterate(v, p));
  }

  List iterate(const Value& v, Pos p) {
    switch (v.kind) {
      case K::Undefined:
        return {};
      case K::List:
        return *v.list;
      case K::Dict: {
        if (v.is_namespace) fail(p, "a namespace is not iterable");
        List keys;
        for (const auto& kv : *v.dict) keys.push_back(Value::string(kv.first));
        return keys;
      }
      case K::String: {
        List cps;
        for (auto& c : code_points(v.s)) cps.push_back(Value::string(std::move(c)));
        return cps;
      }
      default:
        fail(p, std::string("'") + type_name(v) + "' object is not iterable");
    }
  }

  void bind(const Stmt& s, const Value& item) {
    auto& scope = scopes_.back();
    if (s.targets.size() == 1) {
      scope[s.targets[0]] = item;
      return;
    }
    if (item.kind != K::List || item.list->size() != s.targets.size()) {
      fail(s.pos, "cannot unpack " + std::string(type_name(item)) + " into " +
                      std::to_string(s.targets.size()) + " names");
    }
    for (size_t k = 0; k < s.targets.size(); ++k) scope[s.targets[k]] = (*item.list)[k];
  }

  Flow exec_for(const Stmt& s) {
    std::shared_ptr<const List> all = items_of(eval(*s.expr), s.expr->pos);
    if (s.cond) {
      List kept;
      for (const auto& it : *all) {
        scopes_.emplace_back();
        bind(s, it);
        const bool keep = truthy(eval(*s.cond));
        scopes_.pop_back();
        if (keep) kept.push_back(it);
      }
      all = std::make_shared<const List>(std::move(kept));
    }
    const List& items = *all;
    const auto n = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < n; ++k) {
      step(s.pos);
      scopes_.emplace_back();
      bind(s, items[static_cast<size_t>(k)]);
      Value loop = Value::make_dict({
          {"index", Value::integer(k + 1)},
          {"index0", Value::integer(k)},
          {"revindex", Value::integer(n - k)},
          {"revindex0", Value::integer(n - k - 1)},
          {"first", Value::boolean(k == 0)},
          {"last", Value::boolean(k == n - 1)},
          {"length", Value::integer(n)},
          {"previtem", k > 0 ? items[static_cast<size_t>(k - 1)] : Value()},
          {"nextitem", k + 1 < n ? items[static_cast<size_t>(k + 1)] : Value()},
      });
      scopes_.back()["loop"] = std::move(loop);
      const Flow f = exec(s.body);
      scopes_.pop_back();
      if (f == Flow::Break) break;
    }
    if (n == 0) return exec(s.else_body);
    return Flow::Normal;
  }

  Value eval(const Expr& e) {
    step(e.pos);
    try {
      return eval_node(e);
    } catch (const PositionedError&) {
      throw;
    } catch (const Error& err) {
      fail(e.pos, err.what());
    }
  }

  // What an expression names, for messages: `message['role']`, `loop.first`.
  static std::string spell(const Expr& e) {
    switch (e.kind) {
      case EK::Name:
        return e.name;
      case EK::Attr:
        return spell(*e.args[0]) + "." + e.name;
      case EK::Item:
        return spell(*e.args[0]) + "[" +
               (e.args[1]->kind == EK::Literal ? repr(e.args[1]->value) : "...") + "]";
      default:
        return "a value";
    }
  }

  [[noreturn]] void undefined_use(const Value& v, const Expr& e) {
    fail(e.pos, (v.s.empty() ? spell(e) : v.s) + " is undefined");
  }

  Value attr(const Value& obj, const std::string& name, const Expr& e) {
    if (obj.kind == K::Undefined) undefined_use(obj, *e.args[0]);
    if (obj.kind == K::Dict) {
      if (const Value* v = obj.find(name)) return *v;
    }
    Value u;
    u.s = spell(e);
    return u;
  }

  Value item(const Value& obj, const Value& key, const Expr& e) {
    if (obj.kind == K::Undefined) undefined_use(obj, *e.args[0]);
    Value u;
    u.s = spell(e);
    if ((obj.kind == K::List || obj.kind == K::String) &&
        (key.kind == K::Int || key.kind == K::Bool)) {
      int64_t k = key.kind == K::Bool ? key.b : key.i;
      if (obj.kind == K::List) {
        const auto n = static_cast<int64_t>(obj.list->size());
        if (k < 0) k += n;
        if (k < 0 || k >= n) return u;
        return (*obj.list)[static_cast<size_t>(k)];
      }
      const auto cps = code_points(obj.s);
      const auto n = static_cast<int64_t>(cps.size());
      if (k < 0) k += n;
      if (k < 0 || k >= n) return u;
      return Value::string(cps[static_cast<size_t>(k)]);
    }
    if (obj.kind == K::Dict && key.kind == K::String) {
      if (const Value* v = obj.find(key.s)) return *v;
    }
    return u;
  }

  static int64_t slice_index(const Value& v, int64_t n, int64_t dflt, bool is_stop, int64_t step) {
    if (v.kind == K::None || v.kind == K::Undefined) return dflt;
    if (v.kind != K::Int && v.kind != K::Bool)
      throw Error("slice indices must be integers or None");
    int64_t k = v.kind == K::Bool ? v.b : v.i;
    if (k < 0) k = std::max<int64_t>(k + n, step < 0 ? -1 : 0);
    (void)is_stop;
    return std::min(k, step < 0 ? n - 1 : n);
  }

  Value slice(const Expr& e) {
    const Value obj = eval(*e.args[0]);
    Value parts[3];
    for (int k = 0; k < 3; ++k)
      if (e.args[k + 1]) parts[k] = eval(*e.args[k + 1]);
    int64_t stepv = 1;
    if (parts[2].kind == K::Int) stepv = parts[2].i;
    if (stepv == 0) throw Error("slice step cannot be zero");
    std::vector<std::string> cps;
    if (obj.kind == K::Undefined) undefined_use(obj, *e.args[0]);
    if (obj.kind == K::String) cps = code_points(obj.s);
    if (obj.kind != K::String && obj.kind != K::List)
      throw Error(std::string("'") + type_name(obj) + "' object cannot be sliced");
    const int64_t n = obj.kind == K::String ? static_cast<int64_t>(cps.size())
                                            : static_cast<int64_t>(obj.list->size());
    const int64_t start = slice_index(parts[0], n, stepv < 0 ? n - 1 : 0, false, stepv);
    const int64_t stop = slice_index(parts[1], n, stepv < 0 ? -1 : n, true, stepv);
    List l;
    std::string s;
    for (int64_t k = start; stepv > 0 ? k < stop : k > stop;) {
      if (obj.kind == K::String) {
        s += cps[static_cast<size_t>(k)];
      } else {
        l.push_back((*obj.list)[static_cast<size_t>(k)]);
      }
      if (__builtin_add_overflow(k, stepv, &k)) break;  // a huge step ends the slice
    }
    if (obj.kind == K::String) return Value::string(std::move(s));
    return list_of(std::move(l));
  }

  std::vector<Value> args_of(const Expr& e, size_t first) {
    std::vector<Value> a;
    for (size_t k = first; k < e.args.size(); ++k) a.push_back(eval(*e.args[k]));
    return a;
  }

  // Positional and keyword arguments matched to `names` (Python's binding, no *args).
  std::vector<Value> bind_args(const Expr& e, size_t first, const std::vector<std::string>& names,
                               const std::string& what) {
    std::vector<Value> a = args_of(e, first);
    if (a.size() > names.size()) {
      throw Error(what + " takes at most " + std::to_string(names.size()) + " arguments, got " +
                  std::to_string(a.size()));
    }
    a.resize(names.size());
    std::vector<bool> given(names.size(), false);
    for (size_t k = 0; k < e.args.size() - first && k < names.size(); ++k) given[k] = true;
    for (const auto& [kw, x] : e.kwargs) {
      const auto it = std::find(names.begin(), names.end(), kw);
      if (it == names.end()) throw Error(what + " has no argument `" + kw + "`");
      const size_t k = static_cast<size_t>(it - names.begin());
      if (given[k]) throw Error(what + " got `" + kw + "` twice");
      a[k] = eval(*x);
      given[k] = true;
    }
    return a;
  }

  static const std::string& str_arg(const Value& v, const std::string& what) {
    if (v.kind != K::String) throw Error(what + " must be a string, not " + type_name(v));
    return v.s;
  }
  static int64_t int_arg(const Value& v, const std::string& what) {
    if (v.kind == K::Bool) return v.b;
    if (v.kind != K::Int) throw Error(what + " must be an integer, not " + type_name(v));
    return v.i;
  }

  Value eval_node(const Expr& e) {
    switch (e.kind) {
      case EK::Literal:
        return e.value;
      case EK::Name:
        return lookup(e.name);
      case EK::Attr:
        return attr(eval(*e.args[0]), e.name, e);
      case EK::Item: {
        const Value obj = eval(*e.args[0]);
        return item(obj, eval(*e.args[1]), e);
      }
      case EK::Slice:
        return slice(e);
      case EK::Unary: {
        const Value v = eval(*e.args[0]);
        if (e.name == "not") return Value::boolean(!truthy(v));
        if (e.name == "-") return arith("-", Value::integer(0), v, limits_.max_bytes);
        if (v.kind != K::Int && v.kind != K::Float && v.kind != K::Bool)
          throw Error(std::string("bad operand type for unary +: '") + type_name(v) + "'");
        return v.kind == K::Bool ? Value::integer(v.b) : v;
      }
      case EK::Binary: {
        const Value a = eval(*e.args[0]);
        if (e.name == "and") return truthy(a) ? eval(*e.args[1]) : a;
        if (e.name == "or") return truthy(a) ? a : eval(*e.args[1]);
        const Value b = eval(*e.args[1]);
        if (e.name == "~") {
          std::string s = to_str(a) + to_str(b);
          if (s.size() > limits_.max_bytes) throw Error("a string grows past the output limit");
          return Value::string(std::move(s));
        }
        return arith(e.name, a, b, limits_.max_bytes);
      }
      case EK::Compare: {
        Value a = eval(*e.args[0]);
        for (size_t k = 0; k < e.ops.size(); ++k) {
          Value b = eval(*e.args[k + 1]);
          const std::string& op = e.ops[k];
          bool r;
          if (op == "==")
            r = equals(a, b);
          else if (op == "!=")
            r = !equals(a, b);
          else if (op == "<")
            r = less(a, b);
          else if (op == ">")
            r = less(b, a);
          else if (op == "<=")
            r = !less(b, a);
          else if (op == ">=")
            r = !less(a, b);
          else if (op == "in")
            r = contains(b, a);
          else
            r = !contains(b, a);  // not in
          if (!r) return Value::boolean(false);
          a = std::move(b);
        }
        return Value::boolean(true);
      }
      case EK::Cond:
        if (truthy(eval(*e.args[1]))) return eval(*e.args[0]);
        if (e.args[2]) return eval(*e.args[2]);
        return Value();
      case EK::ListLit: {
        Value l = list_of(args_of(e, 0));
        l.is_tuple = e.negated;
        return l;
      }
      case EK::DictLit: {
        Dict d;
        for (size_t k = 0; k < e.args.size(); ++k) {
          const Value key = eval(*e.kwargs[k].second);
          if (key.kind != K::String) throw Error("dict keys must be strings here");
          Value v = eval(*e.args[k]);
          bool found = false;
          for (auto& [dk, dv] : d) {
            if (dk == key.s) {
              dv = v;
              found = true;
            }
          }
          if (!found) d.emplace_back(key.s, std::move(v));
        }
        return dict_of(std::move(d));
      }
      case EK::Call:
        return call(e);
      case EK::Filter:
        return filter(e);
      case EK::Test: {
        const bool r = test(e);
        return Value::boolean(e.negated ? !r : r);
      }
    }
    return Value();
  }

  Value call(const Expr& e) {
    const Expr& callee = *e.args[0];
    if (callee.kind == EK::Name && lookup(callee.name).kind == K::Undefined) {
      const std::string& f = callee.name;
      if (f == "raise_exception") {
        const auto a = bind_args(e, 1, {"message"}, "raise_exception()");
        throw Error("the chat template refuses the conversation: " + to_str(a[0]));
      }
      if (f == "namespace") {
        Dict d;
        for (const auto& v : args_of(e, 1)) {  // namespace({'a': 1}) copies a dict
          if (v.kind != K::Dict || v.is_namespace) throw Error("namespace() takes a dict");
          for (const auto& kv : *v.dict) d.push_back(kv);
        }
        for (const auto& [k, x] : e.kwargs) d.emplace_back(k, eval(*x));
        Value ns = dict_of(std::move(d));
        ns.is_namespace = true;
        return ns;
      }
      if (f == "range") {
        if (!e.kwargs.empty()) throw Error("range() takes no keyword arguments");
        const auto a = args_of(e, 1);
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
          step(e.pos);  // a range costs what iterating it costs
          l.push_back(Value::integer(k));
          if ((st > 0 && k > INT64_MAX - st) || (st < 0 && k < INT64_MIN - st)) break;
        }
        return list_of(std::move(l));
      }
      throw Error("the function `" + f + "()` is not supported by this chat-template renderer");
    }
    if (callee.kind == EK::Attr) return method(e, eval(*callee.args[0]), callee.name);
    throw Error(spell(callee) + " is not a function");
  }

  Value method(const Expr& e, const Value& obj, const std::string& m) {
    const std::string what = std::string(type_name(obj)) + "." + m + "()";
    if (obj.kind == K::String) {
      const std::string& s = obj.s;
      if (m == "strip" || m == "lstrip" || m == "rstrip") {
        const auto a = bind_args(e, 1, {"chars"}, what);
        const bool l = m != "rstrip", r = m != "lstrip";
        if (a[0].kind == K::Undefined || a[0].kind == K::None)
          return Value::string(std::string(strip_space(s, l, r)));
        return Value::string(strip_chars(s, str_arg(a[0], what), l, r));
      }
      if (m == "upper" || m == "lower" || m == "title" || m == "capitalize") {
        bind_args(e, 1, {}, what);
        if (m == "upper") return Value::string(upper(s));
        if (m == "lower") return Value::string(lower(s));
        if (m == "title") return Value::string(title(s));
        return Value::string(capitalize(s));
      }
      if (m == "startswith" || m == "endswith") {
        const auto a = bind_args(e, 1, {"prefix"}, what);
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
        const auto a = bind_args(e, 1, {"sep", "maxsplit"}, what);
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
        const auto a = bind_args(e, 1, {"old", "new", "count"}, what);
        const int64_t count = a[2].kind == K::Undefined ? -1 : int_arg(a[2], "count");
        return Value::string(
            replace_all(s, str_arg(a[0], what), str_arg(a[1], what), count, limits_.max_bytes));
      }
    }
    if (obj.kind == K::Dict && !obj.is_namespace) {
      if (m == "items" || m == "keys" || m == "values") {
        bind_args(e, 1, {}, what);
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
        const auto a = bind_args(e, 1, {"key", "default"}, what);
        if (a[0].kind == K::String)
          if (const Value* v = obj.find(a[0].s)) return *v;
        return a[1].kind == K::Undefined ? Value::none() : a[1];
      }
    }
    if (obj.kind == K::Undefined) undefined_use(obj, *e.args[0]->args[0]);
    throw Error("the method " + what + " is not supported by this chat-template renderer");
  }

  Value filter(const Expr& e) {
    const std::string& f = e.name;
    const Value v = eval(*e.args[0]);
    const std::string what = "the filter `" + f + "`";
    if (f == "trim") {
      const auto a = bind_args(e, 1, {"chars"}, what);
      const std::string s = to_str(v);
      if (a[0].kind == K::Undefined || a[0].kind == K::None)
        return Value::string(std::string(strip_space(s)));
      return Value::string(strip_chars(s, str_arg(a[0], what), true, true));
    }
    if (f == "length" || f == "count") {
      bind_args(e, 1, {}, what);
      return Value::integer(length(v));
    }
    if (f == "tojson") {
      const auto a = bind_args(e, 1, {"indent"}, what);
      const int indent =
          a[0].kind == K::Undefined || a[0].kind == K::None
              ? -1
              : static_cast<int>(std::clamp<int64_t>(int_arg(a[0], "indent"), 0, 64));
      std::string s = to_json(v, indent);
      if (s.size() > limits_.max_bytes) throw Error("tojson output grows past the output limit");
      return Value::string(std::move(s));
    }
    if (f == "string" || f == "safe") {
      bind_args(e, 1, {}, what);
      return Value::string(to_str(v));
    }
    if (f == "lower" || f == "upper" || f == "capitalize" || f == "title") {
      bind_args(e, 1, {}, what);
      const std::string s = to_str(v);
      if (f == "lower") return Value::string(lower(s));
      if (f == "upper") return Value::string(upper(s));
      if (f == "capitalize") return Value::string(capitalize(s));
      return Value::string(title(s));
    }
    if (f == "first" || f == "last") {
      bind_args(e, 1, {}, what);
      const List items = iterate(v, e.pos);
      if (items.empty()) {
        Value u;
        u.s = "the " + f + " item of an empty sequence";
        return u;
      }
      return f == "first" ? items.front() : items.back();
    }
    if (f == "join") {
      const auto a = bind_args(e, 1, {"d"}, what);
      const std::string sep = a[0].kind == K::Undefined ? "" : to_str(a[0]);
      std::string s;
      bool firsti = true;
      for (const auto& x : iterate(v, e.pos)) {
        if (!firsti) s += sep;
        s += to_str(x);
        firsti = false;
        if (s.size() > limits_.max_bytes) throw Error("join() grows past the output limit");
      }
      return Value::string(std::move(s));
    }
    if (f == "default" || f == "d") {
      const auto a = bind_args(e, 1, {"default_value", "boolean"}, what);
      const bool boolean = truthy(a[1]);
      if (v.kind == K::Undefined || (boolean && !truthy(v)))
        return a[0].kind == K::Undefined ? Value::string("") : a[0];
      return v;
    }
    if (f == "list") {
      bind_args(e, 1, {}, what);
      return list_of(iterate(v, e.pos));
    }
    if (f == "reverse") {
      bind_args(e, 1, {}, what);
      if (v.kind == K::String) {
        auto cps = code_points(v.s);
        std::string s;
        for (auto it = cps.rbegin(); it != cps.rend(); ++it) s += *it;
        return Value::string(std::move(s));
      }
      List l = iterate(v, e.pos);
      std::reverse(l.begin(), l.end());
      return list_of(std::move(l));
    }
    if (f == "replace") {
      const auto a = bind_args(e, 1, {"old", "new", "count"}, what);
      const int64_t count =
          a[2].kind == K::Undefined || a[2].kind == K::None ? -1 : int_arg(a[2], "count");
      return Value::string(replace_all(to_str(v), str_arg(a[0], what), str_arg(a[1], what), count,
                                       limits_.max_bytes));
    }
    if (f == "int") {
      bind_args(e, 1, {}, what);
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
      bind_args(e, 1, {}, what);
      if (v.kind == K::Float) return v;
      if (v.kind == K::Int || v.kind == K::Bool)
        return Value::real(static_cast<double>(v.kind == K::Bool ? v.b : v.i));
      return Value::real(0.0);
    }
    if (f == "abs") {
      bind_args(e, 1, {}, what);
      if (v.kind == K::Int) {
        if (v.i == INT64_MIN) throw Error("integer overflow in abs");
        return Value::integer(v.i < 0 ? -v.i : v.i);
      }
      if (v.kind == K::Float) return Value::real(std::fabs(v.f));
      throw Error(std::string("bad operand type for abs(): '") + type_name(v) + "'");
    }
    if (f == "items") {
      bind_args(e, 1, {}, what);
      if (v.kind == K::Undefined) return list_of({});
      if (v.kind != K::Dict || v.is_namespace) throw Error("the filter `items` needs a dict");
      List l;
      for (const auto& [k, x] : *v.dict) l.push_back(list_of({Value::string(k), x}));
      return list_of(std::move(l));
    }
    throw Error(what + " is not supported by this chat-template renderer");
  }

  bool test(const Expr& e) {
    const std::string& t = e.name;
    const Value v = eval(*e.args[0]);
    const std::string what = "the test `" + t + "`";
    auto one = [&] {
      const auto a = bind_args(e, 1, {"other"}, what);
      return a[0];
    };
    auto none = [&] { bind_args(e, 1, {}, what); };
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
      return none(), v.kind == K::List || v.kind == K::Dict || v.kind == K::String ||
                         v.kind == K::Undefined;
    if (t == "sequence")
      return none(), v.kind == K::List || v.kind == K::Dict || v.kind == K::String;
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

  std::string where_;
  Limits limits_;
  std::vector<std::unordered_map<std::string, Value>> scopes_;
  std::string out_;
  int64_t steps_ = 0;
};

}  // namespace

std::string render(const Template& tpl, const Dict& globals, const std::string& where,
                   const Limits& limits) {
  return Renderer(globals, where, limits).run(tpl);
}

}  // namespace lomo::text::jinja
