#include "core/error.h"

namespace lomo {

void assert_fail(const char* expr, const char* file, int line, const std::string& msg) {
  throw std::logic_error(std::string("internal error at ") + file + ":" + std::to_string(line) +
                         ": " + expr + (msg.empty() ? "" : " (" + msg + ")"));
}

}  // namespace lomo
