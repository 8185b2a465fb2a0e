// The parsed form of a Jinja template (the subset chat templates use; text/jinja_parse.h says
// which) and the values it computes with. Values follow Python's semantics, because the reference
// (jinja2 inside transformers' apply_chat_template) runs on Python objects.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lomo::text::jinja {

struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion order, as Python's dict

struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict };
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<List> list;  // shared, as Python references are
  std::shared_ptr<Dict> dict;
  bool is_tuple = false;      // a list written (a, b): prints as Python's tuple
  bool is_namespace = false;  // a namespace() object: the only thing `set a.b = ...` may change
  int depth = 0;              // nesting of lists and dicts (0 for scalars), bounded by the renderer

  static Value none() { return with(Kind::None); }
  static Value boolean(bool v) {
    Value x = with(Kind::Bool);
    x.b = v;
    return x;
  }
  static Value integer(int64_t v) {
    Value x = with(Kind::Int);
    x.i = v;
    return x;
  }
  static Value real(double v) {
    Value x = with(Kind::Float);
    x.f = v;
    return x;
  }
  static Value string(std::string v) {
    Value x = with(Kind::String);
    x.s = std::move(v);
    return x;
  }
  static Value make_list(List v = {}) {
    Value x = with(Kind::List);
    x.list = std::make_shared<List>(std::move(v));
    return x;
  }
  static Value make_dict(Dict v = {}) {
    Value x = with(Kind::Dict);
    x.dict = std::make_shared<Dict>(std::move(v));
    return x;
  }
  // The value of key `k`, or nullptr.
  const Value* find(const std::string& k) const {
    if (kind != Kind::Dict) return nullptr;
    for (const auto& [key, v] : *dict)
      if (key == k) return &v;
    return nullptr;
  }

 private:
  static Value with(Kind k) {
    Value x;
    x.kind = k;
    return x;
  }
};

// Where a construct starts in the template source (1-based), for error messages.
struct Pos {
  int line = 1, col = 1;
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,  // value
    Name,     // name
    Attr,     // a.name
    Item,     // a[b]
    Slice,    // a[b:c:d] (args: start, stop, step; null when omitted)
    Call,     // a(args, kwargs)
    Filter,   // a | name(args, kwargs)
    Test,     // a is [not] name(args)
    Unary,    // op a: "not", "-", "+"
    Binary,   // a op b: and or + - * / // % ** ~ in "not in"
    Compare,  // a op1 b op2 c ...: == != < <= > >= (chained as Python)
    Cond,     // a if b else c (c may be null: undefined)
    ListLit,  // [args] or (args,)
    DictLit,  // {keys: args}
  };
  Kind kind = Kind::Literal;
  Pos pos;
  Value value;                // Literal
  std::string name;           // Name, Attr, Call-less names, Filter, Test, Unary/Binary op
  bool negated = false;       // Test: `is not`; ListLit: a tuple `(a, b)`
  std::vector<ExprPtr> args;  // operands / arguments / elements
  std::vector<std::pair<std::string, ExprPtr>> kwargs;  // Call / Filter keyword arguments
  std::vector<std::string> ops;                         // Compare: the operators between args
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind {
    Text,    // text
    Output,  // {{ expr }}
    If,      // branches: (cond, body)...; else_body
    For,     // targets in iter [if cond]: body; else_body
    Set,     // targets[0](.attr) = expr
    Break,
    Continue,
  };
  Kind kind = Kind::Text;
  Pos pos;
  std::string text;                                // Text
  ExprPtr expr;                                    // Output, Set value, For iterable
  ExprPtr cond;                                    // For filter
  std::vector<std::pair<ExprPtr, Body>> branches;  // If
  Body body, else_body;                            // For / If
  std::vector<std::string> targets;                // For loop variables; Set name
  std::string attr;                                // Set: `set ns.attr = ...`
};

struct Template {
  Body body;
};

}  // namespace lomo::text::jinja
