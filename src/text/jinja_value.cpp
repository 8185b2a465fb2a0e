#include "text/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>

#include "core/error.h"

namespace lomo::text::jinja {

using K = Value::Kind;

namespace {

bool numeric(const Value& v) {
  return v.kind == K::Int || v.kind == K::Float || v.kind == K::Bool;
}
bool integral(const Value& v) {
  return v.kind == K::Int || v.kind == K::Bool;
}
int64_t as_int(const Value& v) {
  return v.kind == K::Bool ? (v.b ? 1 : 0) : v.i;
}
double as_double(const Value& v) {
  return v.kind == K::Float ? v.f : static_cast<double>(as_int(v));
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  // Python's repr: the shortest round-tripping digits, exponent form outside [1e-4, 1e16).
  const double a = std::fabs(d);
  std::to_chars_result r;
  if (a != 0 && (a < 1e-4 || a >= 1e16)) {
    r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  } else {
    r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
  }
  std::string s(buf, r.ptr);
  const size_t e = s.find('e');
  if (e != std::string::npos) {
    // C++ writes 1e+16 / 1e-05; Python 1e+16 / 1e-05: the same, two exponent digits minimum.
    return s;
  }
  if (s.find('.') == std::string::npos) s += ".0";
  return s;
}

std::string str_repr(const std::string& s) {
  const bool dq = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char q = dq ? '"' : '\'';
  std::string out(1, q);
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    char buf[8];
    if (c == '\\') {
      out += "\\\\";
    } else if (c == static_cast<unsigned char>(q)) {
      out += '\\';
      out += q;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) < 0xa0) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(s[i + 1]));  // C1
      out += buf;
      ++i;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += q;
  return out;
}

void json_string(const std::string& s, std::string& out) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void json(const Value& v, int indent, int level, std::string& out) {
  auto newline = [&](int l) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * l), ' ');
  };
  const char* item_sep = indent < 0 ? ", " : ",";
  switch (v.kind) {
    case K::None:
      out += "null";
      return;
    case K::Bool:
      out += v.b ? "true" : "false";
      return;
    case K::Int:
      out += std::to_string(v.i);
      return;
    case K::Float:
      if (std::isnan(v.f)) {
        out += "NaN";
      } else if (std::isinf(v.f)) {
        out += v.f > 0 ? "Infinity" : "-Infinity";
      } else {
        out += float_repr(v.f);
      }
      return;
    case K::String:
      json_string(v.s, out);
      return;
    case K::List:
      if (v.list->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += item_sep;
        newline(level + 1);
        json((*v.list)[k], indent, level + 1, out);
      }
      newline(level);
      out += ']';
      return;
    case K::Dict:
      if (v.is_namespace) throw Error("Object of type Namespace is not JSON serializable");
      if (v.dict->empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t k = 0; k < v.dict->size(); ++k) {
        if (k) out += item_sep;
        newline(level + 1);
        json_string((*v.dict)[k].first, out);
        out += ": ";
        json((*v.dict)[k].second, indent, level + 1, out);
      }
      newline(level);
      out += '}';
      return;
    case K::Undefined:
      throw Error("Object of type Undefined is not JSON serializable");
  }
}

// Python's floor division and modulo on integers (the result takes the divisor's sign).
int64_t floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace

const char* type_name(const Value& v) {
  switch (v.kind) {
    case K::Undefined:
      return "Undefined";
    case K::None:
      return "NoneType";
    case K::Bool:
      return "bool";
    case K::Int:
      return "int";
    case K::Float:
      return "float";
    case K::String:
      return "str";
    case K::List:
      return "list";
    case K::Dict:
      return v.is_namespace ? "Namespace" : "dict";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case K::Undefined:
    case K::None:
      return false;
    case K::Bool:
      return v.b;
    case K::Int:
      return v.i != 0;
    case K::Float:
      return v.f != 0;
    case K::String:
      return !v.s.empty();
    case K::List:
      return !v.list->empty();
    case K::Dict:
      return v.is_namespace || !v.dict->empty();
  }
  return false;
}

std::string to_str(const Value& v) {
  switch (v.kind) {
    case K::Undefined:
      return "";
    case K::String:
      return v.s;
    default:
      return repr(v);
  }
}

std::string repr(const Value& v) {
  switch (v.kind) {
    case K::Undefined:
      return "";
    case K::None:
      return "None";
    case K::Bool:
      return v.b ? "True" : "False";
    case K::Int:
      return std::to_string(v.i);
    case K::Float:
      return float_repr(v.f);
    case K::String:
      return str_repr(v.s);
    case K::List: {
      std::string s = v.is_tuple ? "(" : "[";
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) s += ", ";
        s += repr((*v.list)[k]);
      }
      if (v.is_tuple && v.list->size() == 1) s += ",";
      return s + (v.is_tuple ? ")" : "]");
    }
    case K::Dict: {
      std::string s = v.is_namespace ? "<Namespace {" : "{";
      for (size_t k = 0; k < v.dict->size(); ++k) {
        if (k) s += ", ";
        s += str_repr((*v.dict)[k].first) + ": " + repr((*v.dict)[k].second);
      }
      return s + (v.is_namespace ? "}>" : "}");
    }
  }
  return "";
}

std::string to_json(const Value& v, int indent) {
  std::string out;
  json(v, indent, 0, out);
  return out;
}

bool equals(const Value& a, const Value& b) {
  if (numeric(a) && numeric(b)) {
    if (integral(a) && integral(b)) return as_int(a) == as_int(b);
    return as_double(a) == as_double(b);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case K::Undefined:
    case K::None:
      return true;
    case K::String:
      return a.s == b.s;
    case K::List:
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k)
        if (!equals((*a.list)[k], (*b.list)[k])) return false;
      return true;
    case K::Dict:
      if (a.is_namespace || b.is_namespace) return a.dict == b.dict;  // identity
      if (a.dict->size() != b.dict->size()) return false;
      for (const auto& [k, x] : *a.dict) {
        const Value* y = b.find(k);
        if (y == nullptr || !equals(x, *y)) return false;
      }
      return true;
    default:
      return false;
  }
}

bool less(const Value& a, const Value& b) {
  if (numeric(a) && numeric(b)) {
    if (integral(a) && integral(b)) return as_int(a) < as_int(b);
    return as_double(a) < as_double(b);
  }
  if (a.kind == K::String && b.kind == K::String) return a.s < b.s;  // UTF-8 order = code points
  if (a.kind == K::List && b.kind == K::List) {
    const size_t n = std::min(a.list->size(), b.list->size());
    for (size_t k = 0; k < n; ++k) {
      const Value &x = (*a.list)[k], &y = (*b.list)[k];
      if (!equals(x, y)) return less(x, y);
    }
    return a.list->size() < b.list->size();
  }
  throw Error(std::string("'<' is not supported between instances of '") + type_name(a) +
              "' and '" + type_name(b) + "'");
}

Value arith(const std::string& op, const Value& a, const Value& b, size_t max_bytes) {
  auto unsupported = [&]() -> Value {
    throw Error("unsupported operand types for " + op + ": '" + type_name(a) + "' and '" +
                type_name(b) + "'");
  };
  if (a.kind == K::Undefined || b.kind == K::Undefined) {
    const Value& u = a.kind == K::Undefined ? a : b;
    throw Error((u.s.empty() ? std::string("a value") : u.s) + " is undefined");
  }
  if (op == "+") {
    if (a.kind == K::String && b.kind == K::String) {
      if (a.s.size() + b.s.size() > max_bytes) throw Error("a string grows past the output limit");
      return Value::string(a.s + b.s);
    }
    if (a.kind == K::List && b.kind == K::List) {
      if (a.list->size() + b.list->size() > max_bytes) throw Error("a list grows past the limit");
      List l = *a.list;
      l.insert(l.end(), b.list->begin(), b.list->end());
      return list_of(std::move(l));
    }
  }
  if (op == "*" && ((a.kind == K::String || a.kind == K::List) && integral(b))) {
    const int64_t n = std::max<int64_t>(0, as_int(b));
    const size_t unit = a.kind == K::String ? a.s.size() : a.list->size();
    if (unit != 0 && static_cast<uint64_t>(n) > max_bytes / unit)
      throw Error("a repeated value grows past the output limit");
    if (a.kind == K::String) {
      std::string s;
      for (int64_t k = 0; k < n; ++k) s += a.s;
      return Value::string(std::move(s));
    }
    List l;
    for (int64_t k = 0; k < n; ++k) l.insert(l.end(), a.list->begin(), a.list->end());
    return list_of(std::move(l));
  }
  if (op == "*" && integral(a) && (b.kind == K::String || b.kind == K::List))
    return arith(op, b, a, max_bytes);
  if (!numeric(a) || !numeric(b)) return unsupported();
  if (integral(a) && integral(b) && op != "/") {
    const int64_t x = as_int(a), y = as_int(b);
    int64_t r = 0;
    bool overflow = false;
    if (op == "+") {
      overflow = __builtin_add_overflow(x, y, &r);
    } else if (op == "-") {
      overflow = __builtin_sub_overflow(x, y, &r);
    } else if (op == "*") {
      overflow = __builtin_mul_overflow(x, y, &r);
    } else if (op == "//" || op == "%") {
      if (y == 0) throw Error("integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) {
        overflow = op == "//";
        r = 0;
      } else {
        const int64_t q = floordiv(x, y);
        r = op == "//" ? q : x - q * y;
      }
    } else if (op == "**") {
      if (y < 0) return Value::real(std::pow(static_cast<double>(x), static_cast<double>(y)));
      r = 1;
      for (int64_t k = 0; k < y && !overflow; ++k) {
        overflow = __builtin_mul_overflow(r, x, &r);
        if (r == 0 || r == 1) break;
      }
      if (!overflow && x == -1) r = (y % 2) ? -1 : 1;
    } else {
      return unsupported();
    }
    if (overflow) throw Error("integer overflow in " + op + " (integers are 64-bit here)");
    return Value::integer(r);
  }
  const double x = as_double(a), y = as_double(b);
  if (op == "+") return Value::real(x + y);
  if (op == "-") return Value::real(x - y);
  if (op == "*") return Value::real(x * y);
  if (op == "/") {
    if (y == 0) throw Error("division by zero");
    return Value::real(x / y);
  }
  if (op == "//" || op == "%") {
    if (y == 0) throw Error("float division or modulo by zero");
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    if (op == "%") return Value::real(m);
    const double div = (x - m) / y;  // as CPython's float floor division
    double fd = std::floor(div);
    if (div - fd > 0.5) fd += 1.0;
    return Value::real(fd);
  }
  if (op == "**") return Value::real(std::pow(x, y));
  return unsupported();
}

bool contains(const Value& c, const Value& item) {
  switch (c.kind) {
    case K::Undefined:
      return false;
    case K::String:
      if (item.kind != K::String)
        throw Error(std::string("'in <string>' requires a string as left operand, not ") +
                    type_name(item));
      return c.s.find(item.s) != std::string::npos;
    case K::List:
      return std::any_of(c.list->begin(), c.list->end(),
                         [&](const Value& x) { return equals(x, item); });
    case K::Dict:
      return item.kind == K::String && c.find(item.s) != nullptr;
    default:
      throw Error(std::string("argument of type '") + type_name(c) + "' is not iterable");
  }
}

std::vector<std::string> code_points(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    size_t n = 1;
    while (i + n < s.size() && (static_cast<unsigned char>(s[i + n]) & 0xc0) == 0x80 && n < 4) ++n;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

int64_t length(const Value& v) {
  switch (v.kind) {
    case K::Undefined:
      return 0;
    case K::String: {
      int64_t n = 0;
      for (const char c : v.s) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
      return n;
    }
    case K::List:
      return static_cast<int64_t>(v.list->size());
    case K::Dict:
      return static_cast<int64_t>(v.dict->size());
    default:
      throw Error(std::string("object of type '") + type_name(v) + "' has no len()");
  }
}

List items(const Value& v) {
  switch (v.kind) {
    case K::Undefined:
      return {};
    case K::List:
      return *v.list;
    case K::Dict: {
      if (v.is_namespace) throw Error("a namespace is not iterable");
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
      throw Error(std::string("'") + type_name(v) + "' object is not iterable");
  }
}

Value list_of(List items) {
  int d = 0;
  for (const auto& x : items) {
    if (x.is_namespace) throw Error("a namespace cannot be stored in a list here");
    d = std::max(d, x.depth);
  }
  if (d + 1 > kMaxValueDepth)
    throw Error("lists and dicts nested deeper than " + std::to_string(kMaxValueDepth));
  Value v = Value::make_list(std::move(items));
  v.depth = d + 1;
  return v;
}

Value dict_of(Dict items) {
  int d = 0;
  for (const auto& x : items) {
    if (x.second.is_namespace) throw Error("a namespace cannot be stored in a dict here");
    d = std::max(d, x.second.depth);
  }
  if (d + 1 > kMaxValueDepth)
    throw Error("lists and dicts nested deeper than " + std::to_string(kMaxValueDepth));
  Value v = Value::make_dict(std::move(items));
  v.depth = d + 1;
  return v;
}

}  // namespace lomo::text::jinja
