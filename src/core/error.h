// Two error channels (style.md habit 6):
//  * lomo::Error — something a user can cause (bad file, bad flag, bad data). The message carries
//    enough context to act on: what was wrong, where, and what to do.
//  * LOMO_ASSERT — a broken internal invariant; throws with file:line. Library code never exits.
#pragma once

#include <stdexcept>
#include <string>

namespace lomo {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The loss or a gradient is inf/NaN (design §2 rule 8); callers that know the step add it.
class NonFiniteError : public Error {
 public:
  using Error::Error;
};

[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace lomo

#define LOMO_ASSERT(cond, msg)                                          \
  do {                                                                  \
    if (!(cond)) ::lomo::assert_fail(#cond, __FILE__, __LINE__, (msg)); \
  } while (0)
