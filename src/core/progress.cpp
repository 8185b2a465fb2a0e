#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace lomo {

bool is_live_terminal(std::FILE* f) {
  if (f == nullptr || !isatty(fileno(f))) return false;
  const char* term = std::getenv("TERM");
  return term == nullptr || std::strcmp(term, "dumb") != 0;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<long long>(std::llround(std::max(0.0, seconds)));
  char buf[48];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  }
  return buf;
}

void LiveLine::show(const std::string& text) {
  if (live_) {
    std::fprintf(out_, "\r%s\x1b[K", text.c_str());
    showing_ = true;
  } else {
    std::fprintf(out_, "%s\n", text.c_str());
  }
  std::fflush(out_);
}

void LiveLine::end() {
  if (!showing_) return;
  std::fputc('\n', out_);
  std::fflush(out_);
  showing_ = false;
}

void LiveLine::erase() {
  if (!showing_) return;
  std::fputs("\r\x1b[K", out_);
  std::fflush(out_);
  showing_ = false;
}

std::string format_count(int64_t n) {
  char buf[32];
  const double v = static_cast<double>(n);
  // The thresholds sit where the rounded figure would reach 1000 of its unit.
  if (n < 10000) {
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  } else if (v < 999950) {
    std::snprintf(buf, sizeof buf, "%.1f k", v / 1e3);
  } else if (v < 999950000) {
    std::snprintf(buf, sizeof buf, "%.1f M", v / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f G", v / 1e9);
  }
  return buf;
}

Progress::Progress(LiveLine& line, std::string label, std::string unit, double plain_every)
    : line_(line), label_(std::move(label)), unit_(std::move(unit)), plain_every_(plain_every) {
  label_.resize(std::max<size_t>(label_.size(), 7), ' ');
}

void Progress::update(int64_t done, int64_t total) {
  done_ = done;
  total_ = total;
  const auto now = clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  if (elapsed < 1.0 || done >= total) return;
  const double since = std::chrono::duration<double>(now - last_shown_).count();
  if (shown_ && since < (line_.live() ? 0.1 : plain_every_)) return;
  last_shown_ = now;
  shown_ = true;
  const double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 0.0;
  char buf[160];
  std::snprintf(buf, sizeof buf, " %3.0f%%  %s/%s %s  elapsed %s  ETA %s", 100 * frac,
                format_count(done).c_str(), format_count(total).c_str(), unit_.c_str(),
                format_duration(elapsed).c_str(),
                frac > 0 ? format_duration(elapsed * (1 - frac) / frac).c_str() : "?");
  line_.show(label_ + buf);
}

void Progress::finish() {
  const double elapsed = std::chrono::duration<double>(clock::now() - start_).count();
  if (elapsed < 1.0) {
    line_.erase();
    return;
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, " %s %s in %.1f s", format_count(done_).c_str(), unit_.c_str(),
                elapsed);
  line_.show(label_ + buf);
  line_.end();
}

}  // namespace lomo
