#include "model/init.h"

#include <algorithm>
#include <vector>

namespace lomo {

void init_params(const ModelConfig& c, ModelParams& params, uint64_t seed, Backend& backend) {
  std::vector<float> staging;  // one tensor at a time, for 16-bit storage
  for (auto& p : params.all()) {
    const int64_t n = p.numel();
    float* w = p.f32_or_null();
    if (w == nullptr) {
      staging.resize(static_cast<size_t>(n));
      w = staging.data();
    }
    switch (p.role) {
      case ParamRole::Norm:
        std::fill(w, w + n, 1.0f);
        break;
      case ParamRole::Bias:
        std::fill(w, w + n, 0.0f);
        break;
      default:
        backend.fill_normal(w, n, seed, static_cast<uint64_t>(p.id), c.initializer_range);
    }
    if (w == staging.data()) p.from_f32(w);
  }
}

}  // namespace lomo
