#include "text/jinja_parse.h"

#include <set>

#include "core/error.h"
#include "text/jinja_lex.h"

namespace lomo::text::jinja {

namespace {

using TK = Token::Kind;

class Parser {
 public:
  Parser(std::vector<Token> toks, const std::string& where) : t_(std::move(toks)), where_(where) {}

  Template run() {
    Template tpl;
    std::string end = body(tpl.body, {});
    (void)end;
    return tpl;
  }

 private:
  // RAII nesting counter: deep templates are refused before they exhaust the stack.
  struct Deeper {
    explicit Deeper(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxDepth) {
        p_.fail(p_.cur().pos, "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
      }
    }
    ~Deeper() { --p_.depth_; }
    Parser& p_;
  };

  const Token& cur() const { return t_[k_]; }
  const Token& peek(size_t n = 1) const { return t_[std::min(k_ + n, t_.size() - 1)]; }
  void next() {
    if (k_ + 1 < t_.size()) ++k_;
  }
  bool is_op(const char* op) const { return cur().kind == TK::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().kind == TK::Name && cur().text == n; }

  [[noreturn]] void fail(Pos p, const std::string& what) const {
    throw Error(where_ + " line " + std::to_string(p.line) + ", column " + std::to_string(p.col) +
                ": " + what);
  }
  std::string describe(const Token& t) const {
    switch (t.kind) {
      case TK::Text:
        return "text";
      case TK::BlockBegin:
        return "`{%`";
      case TK::BlockEnd:
        return "`%}`";
      case TK::VarBegin:
        return "`{{`";
      case TK::VarEnd:
        return "`}}`";
      case TK::Name:
        return "`" + t.text + "`";
      case TK::Int:
        return "the number " + t.text;
      case TK::Float:
        return "the number " + t.text;
      case TK::String:
        return "a string";
      case TK::Op:
        return "`" + t.text + "`";
      case TK::End:
        return "the end of the template";
    }
    return "?";
  }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(cur().pos, std::string("expected `") + op + "`, found " + describe(cur()));
    next();
  }
  void expect_name(const char* n) {
    if (!is_name(n)) fail(cur().pos, std::string("expected `") + n + "`, found " + describe(cur()));
    next();
  }
  std::string name() {
    if (cur().kind != TK::Name) fail(cur().pos, "expected a name, found " + describe(cur()));
    std::string s = cur().text;
    next();
    return s;
  }
  void block_end() {
    if (cur().kind != TK::BlockEnd)
      fail(cur().pos, "expected `%}` to end the statement, found " + describe(cur()));
    next();
  }

  // Statements until one of `ends` (a block whose first name is in it), which is consumed up to
  // its name; returns that name ("" at the end of the template, allowed only when ends is empty).
  std::string body(Body& out, const std::set<std::string>& ends) {
    Deeper d(*this);
    while (true) {
      const Token& t = cur();
      if (t.kind == TK::End) {
        if (!ends.empty()) {
          std::string list;
          for (const auto& e : ends) list += (list.empty() ? "`{% " : " or `{% ") + e + " %}`";
          fail(t.pos, "the template ends where " + list + " was expected");
        }
        return "";
      }
      if (t.kind == TK::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Text;
        s->pos = t.pos;
        s->text = t.text;
        out.push_back(std::move(s));
        next();
      } else if (t.kind == TK::VarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Output;
        s->pos = t.pos;
        next();
        nodes_ = 0;
        s->expr = expr();
        if (cur().kind != TK::VarEnd) fail(cur().pos, "expected `}}`, found " + describe(cur()));
        next();
        out.push_back(std::move(s));
      } else if (t.kind == TK::BlockBegin) {
        next();
        const Pos p = cur().pos;
        const std::string kw = name();
        if (ends.count(kw)) return kw;
        out.push_back(statement(kw, p));
      } else {
        fail(t.pos, "unexpected " + describe(t));
      }
    }
  }

  std::unique_ptr<Stmt> statement(const std::string& kw, Pos p) {
    nodes_ = 0;
    auto s = std::make_unique<Stmt>();
    s->pos = p;
    if (kw == "if") {
      s->kind = Stmt::Kind::If;
      ExprPtr c = expr();
      block_end();
      while (true) {
        Body b;
        const std::string end = body(b, {"elif", "else", "endif"});
        s->branches.emplace_back(std::move(c), std::move(b));
        if (end == "elif") {
          c = expr();
          block_end();
          continue;
        }
        if (end == "else") {
          block_end();
          body(s->else_body, {"endif"});
        }
        block_end();
        return s;
      }
    }
    if (kw == "for") {
      s->kind = Stmt::Kind::For;
      s->targets.push_back(name());
      while (is_op(",")) {
        next();
        s->targets.push_back(name());
      }
      if (s->targets.size() > 2) fail(p, "a for loop unpacks at most two names");
      expect_name("in");
      s->expr = or_expr();
      if (is_name("if")) {
        next();
        s->cond = or_expr();
      }
      if (is_name("recursive")) fail(cur().pos, "recursive for loops are not supported");
      block_end();
      ++loops_;
      const std::string end = body(s->body, {"else", "endfor"});
      if (end == "else") {
        --loops_;  // break/continue in a loop's else belong to the enclosing loop
        block_end();
        body(s->else_body, {"endfor"});
        ++loops_;
      }
      --loops_;
      block_end();
      return s;
    }
    if (kw == "set") {
      s->kind = Stmt::Kind::Set;
      s->targets.push_back(name());
      if (is_op(".")) {
        next();
        s->attr = name();
      }
      if (is_op(",")) fail(cur().pos, "`{% set a, b = ... %}` (unpacking) is not supported");
      if (cur().kind == TK::BlockEnd)
        fail(p, "the block form `{% set x %}...{% endset %}` is not supported");
      expect_op("=");
      s->expr = expr();
      block_end();
      return s;
    }
    if (kw == "break" || kw == "continue") {
      if (loops_ == 0) fail(p, "`{% " + kw + " %}` outside a for loop");
      s->kind = kw == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue;
      block_end();
      return s;
    }
    static const std::set<std::string> known = {
        "macro", "call", "filter", "include",    "import",     "from", "extends",
        "block", "raw",  "with",   "autoescape", "generation", "do",   "trans"};
    if (known.count(kw)) {
      fail(p, "the statement `{% " + kw + " %}` is not supported by this chat-template renderer");
    }
    fail(p, "unknown statement `{% " + kw + " %}`");
  }

  ExprPtr node(Expr::Kind k, Pos p) {
    // Chains (a + b + c ..., a.b.c ..., x|f|g ...) are parsed by loops but nest as deeply as
    // they are long, and evaluating or freeing them recurses: bounding the parts of one tag
    // bounds that depth.
    if (++nodes_ > kMaxParts) {
      fail(p, "a tag of more than " + std::to_string(kMaxParts) + " parts (operators, names, "
              "literals)");
    }
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->pos = p;
    return e;
  }

  // expr: or_expr ['if' or_expr ['else' expr]]
  ExprPtr expr() {
    Deeper d(*this);
    ExprPtr a = or_expr();
    while (is_name("if")) {
      const Pos p = cur().pos;
      next();
      auto c = node(Expr::Kind::Cond, p);
      c->args.push_back(std::move(a));
      c->args.push_back(or_expr());
      if (is_name("else")) {
        next();
        c->args.push_back(expr());
      } else {
        c->args.push_back(nullptr);
      }
      a = std::move(c);
    }
    return a;
  }

  ExprPtr binary(ExprPtr a, const std::string& op, Pos p, ExprPtr b) {
    auto e = node(Expr::Kind::Binary, p);
    e->name = op;
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  ExprPtr or_expr() {
    ExprPtr a = and_expr();
    while (is_name("or")) {
      const Pos p = cur().pos;
      next();
      a = binary(std::move(a), "or", p, and_expr());
    }
    return a;
  }
  ExprPtr and_expr() {
    ExprPtr a = not_expr();
    while (is_name("and")) {
      const Pos p = cur().pos;
      next();
      a = binary(std::move(a), "and", p, not_expr());
    }
    return a;
  }
  ExprPtr not_expr() {
    if (is_name("not")) {
      Deeper d(*this);
      auto e = node(Expr::Kind::Unary, cur().pos);
      next();
      e->name = "not";
      e->args.push_back(not_expr());
      return e;
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr a = math1();
    ExprPtr c;
    while (true) {
      std::string op;
      const Pos p = cur().pos;
      if (cur().kind == TK::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                   cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && peek().kind == TK::Name && peek().text == "in") {
        op = "not in";
        next();
        next();
      } else {
        break;
      }
      if (!c) {
        c = node(Expr::Kind::Compare, p);
        c->args.push_back(std::move(a));
      }
      c->ops.push_back(op);
      c->args.push_back(math1());
    }
    return c ? std::move(c) : std::move(a);
  }
  ExprPtr math1() {
    ExprPtr a = concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = cur().text;
      const Pos p = cur().pos;
      next();
      a = binary(std::move(a), op, p, concat());
    }
    return a;
  }
  ExprPtr concat() {
    ExprPtr a = math2();
    while (is_op("~")) {
      const Pos p = cur().pos;
      next();
      a = binary(std::move(a), "~", p, math2());
    }
    return a;
  }
  ExprPtr math2() {
    ExprPtr a = power();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = cur().text;
      const Pos p = cur().pos;
      next();
      a = binary(std::move(a), op, p, power());
    }
    return a;
  }
  ExprPtr power() {
    ExprPtr a = unary(true);
    while (is_op("**")) {
      const Pos p = cur().pos;
      next();
      a = binary(std::move(a), "**", p, unary(true));
    }
    return a;
  }
  ExprPtr unary(bool with_filter) {
    Deeper d(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = node(Expr::Kind::Unary, cur().pos);
      e->name = cur().text;
      next();
      e->args.push_back(unary(false));
    } else {
      e = postfix(primary());
    }
    if (with_filter) e = filters(std::move(e));
    return e;
  }

  ExprPtr primary() {
    const Token& t = cur();
    const Pos p = t.pos;
    if (t.kind == TK::Name) {
      const std::string n = t.text;
      next();
      if (n == "true" || n == "True") return literal(Value::boolean(true), p);
      if (n == "false" || n == "False") return literal(Value::boolean(false), p);
      if (n == "none" || n == "None") return literal(Value::none(), p);
      auto e = node(Expr::Kind::Name, p);
      e->name = n;
      return e;
    }
    if (t.kind == TK::String) {
      std::string s;
      while (cur().kind == TK::String) {  // adjacent literals concatenate
        s += cur().text;
        next();
      }
      return literal(Value::string(std::move(s)), p);
    }
    if (t.kind == TK::Int) {
      const int64_t v = t.i;
      next();
      return literal(Value::integer(v), p);
    }
    if (t.kind == TK::Float) {
      const double v = t.f;
      next();
      return literal(Value::real(v), p);
    }
    if (is_op("(")) {
      next();
      if (is_op(")")) {
        next();
        return node(Expr::Kind::ListLit, p);  // () : an empty tuple
      }
      ExprPtr first = expr();
      if (is_op(")")) {
        next();
        return first;
      }
      auto l = node(Expr::Kind::ListLit, p);
      l->negated = true;  // a tuple
      l->args.push_back(std::move(first));
      while (is_op(",")) {
        next();
        if (is_op(")")) break;
        l->args.push_back(expr());
      }
      expect_op(")");
      return l;
    }
    if (is_op("[")) {
      next();
      auto l = node(Expr::Kind::ListLit, p);
      while (!is_op("]")) {
        l->args.push_back(expr());
        if (!is_op(",")) break;
        next();
      }
      expect_op("]");
      return l;
    }
    if (is_op("{")) {
      next();
      auto d = node(Expr::Kind::DictLit, p);
      while (!is_op("}")) {
        ExprPtr key = expr();
        expect_op(":");
        d->kwargs.emplace_back("", std::move(key));
        d->args.push_back(expr());
        if (!is_op(",")) break;
        next();
      }
      expect_op("}");
      return d;
    }
    fail(p, "expected a value, found " + describe(t));
  }

  ExprPtr literal(Value v, Pos p) {
    auto e = node(Expr::Kind::Literal, p);
    e->value = std::move(v);
    return e;
  }

  ExprPtr postfix(ExprPtr e) {
    while (true) {
      const Pos p = cur().pos;
      if (is_op(".")) {
        next();
        if (cur().kind == TK::Int) {  // a.0 is a[0]
          auto it = node(Expr::Kind::Item, p);
          it->args.push_back(std::move(e));
          it->args.push_back(literal(Value::integer(cur().i), cur().pos));
          next();
          e = std::move(it);
          continue;
        }
        auto a = node(Expr::Kind::Attr, p);
        a->name = name();
        a->args.push_back(std::move(e));
        e = std::move(a);
      } else if (is_op("[")) {
        next();
        e = subscript(std::move(e), p);
      } else if (is_op("(")) {
        const Pos at = e->pos;  // a call is where its function is named
        e = call(std::move(e), at);
      } else {
        return e;
      }
    }
  }

  ExprPtr subscript(ExprPtr obj, Pos p) {
    ExprPtr parts[3];
    int n = 0;
    bool slice = false;
    while (true) {
      if (!is_op(":") && !is_op("]")) parts[n] = expr();
      if (is_op(":")) {
        slice = true;
        if (++n > 2) fail(cur().pos, "a slice has at most three parts");
        next();
        continue;
      }
      break;
    }
    expect_op("]");
    if (!slice) {
      if (!parts[0]) fail(p, "empty subscript `[]`");
      auto it = node(Expr::Kind::Item, p);
      it->args.push_back(std::move(obj));
      it->args.push_back(std::move(parts[0]));
      return it;
    }
    auto s = node(Expr::Kind::Slice, p);
    s->args.push_back(std::move(obj));
    for (auto& x : parts) s->args.push_back(std::move(x));
    return s;
  }

  // `(` args `)` into e->args (after any existing ones) and e->kwargs.
  void arguments(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) fail(cur().pos, "`*args` / `**kwargs` are not supported");
      if (cur().kind == TK::Name && peek().kind == TK::Op && peek().text == "=") {
        std::string k = name();
        next();
        e.kwargs.emplace_back(std::move(k), expr());
      } else {
        if (!e.kwargs.empty()) fail(cur().pos, "a positional argument after keyword arguments");
        e.args.push_back(expr());
      }
      if (!is_op(",")) break;
      next();
    }
    expect_op(")");
  }

  ExprPtr call(ExprPtr callee, Pos p) {
    Deeper d(*this);
    auto c = node(Expr::Kind::Call, p);
    c->args.push_back(std::move(callee));
    arguments(*c);
    return c;
  }

  ExprPtr filters(ExprPtr e) {
    while (true) {
      const Pos p = cur().pos;
      if (is_op("|")) {
        next();
        auto f = node(Expr::Kind::Filter, p);
        f->name = name();
        while (is_op(".")) {  // dotted filter names
          next();
          f->name += "." + name();
        }
        f->args.push_back(std::move(e));
        if (is_op("(")) arguments(*f);
        e = std::move(f);
      } else if (is_name("is")) {
        next();
        auto t = node(Expr::Kind::Test, p);
        if (is_name("not")) {
          t->negated = true;
          next();
        }
        t->name = name();
        t->args.push_back(std::move(e));
        if (is_op("(")) {
          arguments(*t);
        } else if ((cur().kind == TK::Name && !is_name("else") && !is_name("or") &&
                    !is_name("and") && !is_name("if") && !is_name("in") && !is_name("not") &&
                    !is_name("is")) ||
                   cur().kind == TK::String || cur().kind == TK::Int || cur().kind == TK::Float ||
                   is_op("(") || is_op("[") || is_op("{")) {
          t->args.push_back(postfix(primary()));  // `x is divisibleby 3`
        }
        e = std::move(t);
      } else if (is_op("(")) {
        e = call(std::move(e), p);
      } else {
        return e;
      }
    }
  }

  std::vector<Token> t_;
  std::string where_;
  size_t k_ = 0;
  int depth_ = 0;
  int loops_ = 0;
  int nodes_ = 0;  // expression nodes of the current tag
};

}  // namespace

Template parse(std::string_view source, const std::string& where) {
  return Parser(lex(source, where), where).run();
}

}  // namespace lomo::text::jinja
