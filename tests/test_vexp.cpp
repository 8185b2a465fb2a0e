// vexp (ops/cpu/vexp.h) against exp in double: at most 2 ulp on 4 million floats spread over
// the whole range the ops feed it, and the clamps at both ends.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/cpu/vexp.h"

namespace lomo {
namespace {

TEST(Vexp, WithinTwoUlpOfExp) {
  double worst = 0;
  float worst_x = 0;
  const int n = 1 << 22;
  for (int i = 0; i <= n; ++i) {
    const float x = -87.0f + 175.0f * static_cast<float>(i) / n;
    const double e = std::exp(static_cast<double>(x));
    const double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(e)) - 23);
    const double err = std::fabs(vexp(x) - e) / ulp;
    if (err > worst) {
      worst = err;
      worst_x = x;
    }
  }
  EXPECT_LE(worst, 2.0) << "at x = " << worst_x;
  EXPECT_EQ(vexp(0.0f), 1.0f);
  EXPECT_GT(vexp(-1000.0f), 0.0f);
  EXPECT_LT(vexp(-1000.0f), 2e-38f);
  EXPECT_TRUE(std::isfinite(vexp(1000.0f)));
}

}  // namespace
}  // namespace lomo
