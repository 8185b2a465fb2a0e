#include "text/jinja_eval.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <unordered_map>

#include "core/error.h"
#include "text/jinja_builtins.h"
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
    try {
      return jinja::items(v);
    } catch (const Error& e) {
      fail(p, e.what());
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

  CallArgs arguments(const Expr& e, size_t first) {
    CallArgs a;
    for (size_t k = first; k < e.args.size(); ++k) a.pos.push_back(eval(*e.args[k]));
    for (const auto& [k, x] : e.kwargs) a.kw.emplace_back(k, eval(*x));
    return a;
  }

  Value call(const Expr& e) {
    const Expr& callee = *e.args[0];
    if (callee.kind == EK::Name && lookup(callee.name).kind == K::Undefined) {
      if (!is_function(callee.name)) {
        throw Error("the function `" + callee.name +
                    "()` is not supported by this chat-template renderer");
      }
      return call_function(callee.name, arguments(e, 1), [&] { step(e.pos); });
    }
    if (callee.kind == EK::Attr) {
      const Value obj = eval(*callee.args[0]);
      if (obj.kind == K::Undefined) undefined_use(obj, *callee.args[0]);
      return call_method(obj, callee.name, arguments(e, 1), limits_.max_bytes);
    }
    throw Error(spell(callee) + " is not a function");
  }

  Value filter(const Expr& e) {
    const Value v = eval(*e.args[0]);
    return apply_filter(e.name, v, arguments(e, 1), limits_.max_bytes);
  }

  bool test(const Expr& e) {
    const Value v = eval(*e.args[0]);
    return apply_test(e.name, v, arguments(e, 1));
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
