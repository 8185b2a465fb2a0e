#include "model/init.h"

#include <vector>

#include "core/rng.h"

namespace lomo {

void init_params(const ModelConfig& c, ModelParams& params, uint64_t seed) {
  std::vector<float> staging;  // one tensor at a time, for 16-bit storage
  for (auto& p : params.all()) {
    const int64_t n = p.numel();
    float* w = p.f32_or_null();
    if (w == nullptr) {
      staging.resize(static_cast<size_t>(n));
      w = staging.data();
    }
    const bool is_norm = p.name.find("norm") != std::string::npos;
    const bool is_bias = p.name.size() > 5 && p.name.compare(p.name.size() - 5, 5, ".bias") == 0;
    if (is_norm) {
      for (int64_t i = 0; i < n; ++i) w[i] = 1.0f;
    } else if (is_bias) {
      for (int64_t i = 0; i < n; ++i) w[i] = 0.0f;
    } else {
      const auto id = static_cast<uint64_t>(p.id);
#pragma omp parallel for
      for (int64_t i = 0; i < n; ++i) {
        w[i] = static_cast<float>(c.initializer_range *
                                  counter_normal(seed, id, static_cast<uint64_t>(i)));
      }
    }
    if (w == staging.data()) p.from_f32(w);
  }
}

}  // namespace lomo
