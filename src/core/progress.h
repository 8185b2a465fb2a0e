// Progress of long work for a person watching: on a terminal one live line rewritten in place
// ("\r", clear to the end), elsewhere (CI, pipes, files) plain lines that carry the same
// information. Work that ends within a second prints nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

namespace lomo {

// Reported by long work (loading, export, evaluation) as it goes: `done` of `total` units.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// True when `f` is a terminal that understands "\r" and ESC[K (isatty, and TERM is not "dumb").
bool is_live_terminal(std::FILE* f);

// "1:05", "1:02:03": seconds as m:ss or h:mm:ss.
std::string format_duration(double seconds);

// "950", "12.3 k", "134.5 M", "6.74 G": a count as it reads at a glance (exact below 10,000).
std::string format_count(int64_t n);

// The one live line of a terminal. Whoever prints a whole line while it may be showing calls
// end() first, so that the line is kept (a newline) rather than overwritten.
class LiveLine {
 public:
  LiveLine(std::FILE* out, bool live) : out_(out), live_(live) {}
  bool live() const { return live_; }
  // Live: rewrites the line in place. Plain: prints `text` and a newline.
  void show(const std::string& text);
  // Live: ends a showing line with a newline (it stays on screen). Plain: nothing.
  void end();
  // Live: erases a showing line. Plain: nothing.
  void erase();

 private:
  std::FILE* out_;
  bool live_;
  bool showing_ = false;
};

// `label` ("load", "export", "eval"), then the fraction done, the elapsed time and an estimate
// of what remains, once the work has run for a second (the estimate assumes every unit costs the
// same: weights are counted by parameter, not by tensor, so that one large embedding does not
// skew it): live, at most ten times a second; plain, one line every `plain_every` seconds.
// finish() prints one closing line if the work took more than a second
// ("load    134.5 M parameters in 3.4 s").
class Progress {
 public:
  Progress(LiveLine& line, std::string label, std::string unit, double plain_every = 10.0);
  void update(int64_t done, int64_t total);
  void finish();
  // A ProgressFn that calls update(); valid while this object lives.
  ProgressFn fn() {
    return [this](int64_t done, int64_t total) { update(done, total); };
  }

 private:
  using clock = std::chrono::steady_clock;
  LiveLine& line_;
  std::string label_, unit_;
  double plain_every_;
  clock::time_point start_ = clock::now(), last_shown_{};
  int64_t done_ = 0, total_ = 0;
  bool shown_ = false;
};

}  // namespace lomo
