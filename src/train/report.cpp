#include "train/report.h"

#include <cstdio>

namespace lomo {

std::string memory_table(const MemoryTracker& t) {
  std::string s;
  char line[160];
  std::snprintf(line, sizeof line, "  %-18s %14s %14s\n", "memory", "current", "peak");
  s += line;
  for (int i = 0; i < kNumMemCategories; ++i) {
    const auto c = static_cast<MemCategory>(i);
    std::snprintf(line, sizeof line, "  %-18s %14s %14s\n", category_name(c),
                  format_bytes(t.current(c)).c_str(), format_bytes(t.peak(c)).c_str());
    s += line;
  }
  std::snprintf(line, sizeof line, "  %-18s %14s %14s\n", "total (tracked)",
                format_bytes(t.current_total()).c_str(), format_bytes(t.peak_total()).c_str());
  s += line;
  std::snprintf(line, sizeof line, "  %-18s %14s %14s\n", "process peak RSS", "",
                format_bytes(process_peak_rss_bytes()).c_str());
  s += line;
  return s;
}

nlohmann::json memory_json(const MemoryTracker& t) {
  nlohmann::ordered_json j;
  j["parameters"] = t.peak(MemCategory::Parameters);
  j["gradients"] = t.peak(MemCategory::Gradients);
  j["optimizer_states"] = t.peak(MemCategory::OptimizerStates);
  j["activations"] = t.peak(MemCategory::Activations);
  j["workspace"] = t.peak(MemCategory::Workspace);
  j["peak_total"] = t.peak_total();
  j["peak_rss"] = process_peak_rss_bytes();
  return j;
}

}  // namespace lomo
