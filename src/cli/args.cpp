#include "cli/args.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"

namespace lomo::cli {

Args::Args(std::string command, std::string usage, std::string summary, std::vector<Flag> flags)
    : command_(std::move(command)),
      usage_(std::move(usage)),
      summary_(std::move(summary)),
      flags_(std::move(flags)) {}

const Flag& Args::spec(const std::string& name) const {
  for (const auto& f : flags_) {
    if (f.name == name) return f;
  }
  LOMO_ASSERT(false, "undeclared flag --" + name);
}

void Args::parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      continue;
    }
    if (a.rfind("--", 0) != 0) {
      throw Error("unexpected argument \"" + a + "\" (flags start with --; see lomo " + command_ +
                  " --help)");
    }
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const Flag* f = nullptr;
    for (const auto& x : flags_) {
      if (x.name == name) f = &x;
    }
    if (f == nullptr) {
      throw Error("unknown flag --" + name + " (see lomo " + command_ + " --help)");
    }
    if (f->value_name.empty()) {
      if (has_value) throw Error("--" + name + " is a switch and takes no value");
    } else if (!has_value) {
      if (i + 1 >= argc) throw Error("--" + name + " needs a value (" + f->value_name + ")");
      value = argv[++i];
    }
    if (values_.count(name) && !f->repeatable) throw Error("--" + name + " given twice");
    values_[name] = value;
    if (f->repeatable) repeated_[name].push_back(value);
  }
  if (help_) return;
  for (const auto& f : flags_) {
    if (f.required && !values_.count(f.name)) {
      throw Error("--" + f.name + " " + f.value_name + " is required (" + f.help + ")");
    }
  }
}

std::string Args::help() const {
  std::string s = "usage: " + usage_ + "\n\n" + summary_ + "\n\nflags:\n";
  for (const auto& f : flags_) {
    std::string left = "  --" + f.name + (f.value_name.empty() ? "" : " " + f.value_name);
    if (left.size() < 28)
      left.resize(28, ' ');
    else
      left += "\n" + std::string(28, ' ');
    s += left + f.help;
    if (f.required)
      s += " (required)";
    else if (!f.default_value.empty())
      s += " [default: " + f.default_value + "]";
    s += "\n";
  }
  s += "  --help                    show this help\n";
  return s;
}

bool Args::declared(const std::string& name) const {
  for (const auto& f : flags_) {
    if (f.name == name) return true;
  }
  return false;
}

bool Args::given(const std::string& name) const {
  return values_.count(name) > 0;
}

std::string Args::str(const std::string& name) const {
  const Flag& f = spec(name);
  auto it = values_.find(name);
  return it != values_.end() ? it->second : f.default_value;
}

std::vector<std::string> Args::all(const std::string& name) const {
  spec(name);
  const auto it = repeated_.find(name);
  return it != repeated_.end() ? it->second : std::vector<std::string>{};
}

int64_t Args::integer(const std::string& name, int64_t min, int64_t max) const {
  const std::string v = str(name);
  int64_t x = 0;
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || p != v.data() + v.size()) {
    throw Error("--" + name + ": expected an integer, got \"" + v + "\"");
  }
  if (x < min || x > max) {
    throw Error("--" + name + ": " + v + " is out of range [" + std::to_string(min) + ", " +
                std::to_string(max) + "]");
  }
  return x;
}

double Args::number(const std::string& name, double min, double max) const {
  const std::string v = str(name);
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || !std::isfinite(x)) {
    throw Error("--" + name + ": expected a number, got \"" + v + "\"");
  }
  if (x < min || x > max) {
    char range[96];
    std::snprintf(range, sizeof range, "[%g, %g]", min, max);
    throw Error("--" + name + ": " + v + " is out of range " + range);
  }
  return x;
}

bool Args::on_off(const std::string& name) const {
  return choice(name, {"on", "off"}) == "on";
}

std::string Args::choice(const std::string& name, const std::vector<std::string>& choices) const {
  const std::string v = str(name);
  std::string list;
  for (const auto& c : choices) {
    if (c == v) return v;
    list += (list.empty() ? "" : ", ") + c;
  }
  throw Error("--" + name + ": \"" + v + "\" is not one of " + list);
}

// "20G", "512M", "1.5GiB", "1000000" -> bytes.
size_t parse_bytes(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  std::string unit(end);
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  double mult = 1;
  if (unit == "K" || unit == "KB" || unit == "KIB")
    mult = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MIB")
    mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GB" || unit == "GIB")
    mult = 1024.0 * 1024 * 1024;
  else if (!unit.empty())
    throw Error("--memory-limit: \"" + s + "\" is not a size (e.g. 20G, 512M)");
  if (end == s.c_str() || v < 0)
    throw Error("--memory-limit: \"" + s + "\" is not a size (e.g. 20G, 512M)");
  return static_cast<size_t>(v * mult);
}

}  // namespace lomo::cli
