// The memory report: the five categories of design §3, current and peak, plus process peak RSS.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/memory.h"

namespace lomo {

// A table for people.
std::string memory_table(const MemoryTracker& t);
// memory.json: {"parameters": bytes, "gradients": peak, "optimizer_states": bytes,
// "activations": peak, "workspace": peak, "peak_total": bytes, "peak_rss": bytes}.
nlohmann::json memory_json(const MemoryTracker& t);

}  // namespace lomo
