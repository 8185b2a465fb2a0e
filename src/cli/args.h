// A small flag parser: every command declares its flags once (name, value, help, default), and
// gets --help text and clear errors for unknown flags, missing values and bad numbers from it.
// A flag with an empty value_name is a switch: present or absent, never followed by a value.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lomo::cli {

struct Flag {
  std::string name;        // without the leading "--"
  std::string value_name;  // "N", "F", "DIR"; empty for a switch (--measure)
  std::string help;
  std::string default_value;  // "" = no default
  bool required = false;
  bool repeatable = false;  // may be given several times (all()); str() is the last
};

class Args {
 public:
  Args(std::string command, std::string usage, std::string summary, std::vector<Flag> flags);

  // Parses argv[first..argc). Throws lomo::Error naming the flag on any problem.
  void parse(int argc, char** argv, int first);
  bool help_requested() const { return help_; }
  std::string help() const;

  bool declared(const std::string& name) const;  // a flag of this command
  bool given(const std::string& name) const;     // set on the command line (a switch: present)
  std::string str(const std::string& name) const;
  // Every value of a repeatable flag, in command-line order (empty when not given).
  std::vector<std::string> all(const std::string& name) const;
  int64_t integer(const std::string& name, int64_t min, int64_t max) const;
  double number(const std::string& name, double min, double max) const;
  // "on" / "off"
  bool on_off(const std::string& name) const;
  // One of `choices`
  std::string choice(const std::string& name, const std::vector<std::string>& choices) const;

 private:
  const Flag& spec(const std::string& name) const;
  std::string command_, usage_, summary_;
  std::vector<Flag> flags_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> repeated_;
  bool help_ = false;
};

// A --memory-limit value: "20G", "512M", "1.5GiB", "1000000" -> bytes.
size_t parse_bytes(const std::string& s);

}  // namespace lomo::cli
