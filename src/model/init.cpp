#include "model/init.h"

#include "core/rng.h"

namespace lomo {

void init_params(const ModelConfig& c, ModelParams& params, uint64_t seed) {
  for (auto& p : params.all()) {
    float* w = p.f();
    const int64_t n = p.numel();
    const bool is_norm = p.name.find("norm") != std::string::npos;
    const bool is_bias = p.name.size() > 5 && p.name.compare(p.name.size() - 5, 5, ".bias") == 0;
    if (is_norm) {
      for (int64_t i = 0; i < n; ++i) w[i] = 1.0f;
    } else if (is_bias) {
      for (int64_t i = 0; i < n; ++i) w[i] = 0.0f;
    } else {
#pragma omp parallel for
      for (int64_t i = 0; i < n; ++i) {
        w[i] = static_cast<float>(c.initializer_range * counter_normal(seed,
                                                                       static_cast<uint64_t>(p.id),
                                                                       static_cast<uint64_t>(i)));
      }
    }
  }
}

}  // namespace lomo
