#include "model/init.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "io/safetensors_stream.h"
#include "model/loader.h"

namespace lomo {

void init_tensor(const ModelConfig& c, const ParamSpec& s, int index, uint64_t seed, float* dst,
                 Backend& backend, int64_t begin, int64_t n) {
  LOMO_ASSERT(begin >= 0 && n >= 0 && begin + n <= spec_numel(s),
              "init_tensor: range outside the tensor");
  switch (s.role) {
    case ParamRole::Norm:
      backend.fill(dst, 1.0f, n);
      break;
    case ParamRole::Bias:
      backend.fill(dst, 0.0f, n);
      break;
    default:
      backend.fill_normal(dst, n, seed, static_cast<uint64_t>(index), c.initializer_range, begin);
  }
}

void init_params(const ModelConfig& c, ModelParams& params, uint64_t seed, Backend& backend,
                 int64_t staging_elems) {
  LOMO_ASSERT(staging_elems > 0, "init_params: empty staging");
  const auto specs = expected_params(c);
  std::vector<float> staging;  // (≤ staging_elems) a piece of a 16-bit tensor
  for (auto& p : params.all()) {
    const ParamSpec& s = specs[static_cast<size_t>(p.id)];
    if (float* w = p.f32_or_null()) {
      init_tensor(c, s, p.id, seed, w, backend, 0, p.numel());
      continue;
    }
    staging.resize(static_cast<size_t>(std::min(p.numel(), staging_elems)));
    for_each_piece(p.numel(), staging_elems, [&](int64_t b, int64_t n) {
      init_tensor(c, s, p.id, seed, staging.data(), backend, b, n);
      p.from_f32(staging.data(), b, n);
    });
  }
}

void init_params_in_place(const ModelConfig& c, ModelParams& params, uint64_t seed,
                          Backend& backend, MemoryTracker& tracker, const ProgressFn& progress,
                          int64_t staging_elems) {
  const auto specs = expected_params(c);
  int64_t largest16 = 0;
  for (const Param& p : params.all()) {
    if (p.dtype != StorageDtype::F32) largest16 = std::max(largest16, p.numel());
  }
  LOMO_ASSERT(staging_elems > 0, "init_params_in_place: empty staging");
  const int64_t piece = std::min(largest16, staging_elems);
  Buffer scratch(backend.allocator(), tracker, MemCategory::Workspace,
                 static_cast<size_t>(piece) * 4);  // (piece) fp32
  const int64_t total = params.total_numel();  // progress counts parameters, not tensors
  int64_t done = 0;
  for (Param& p : params.all()) {
    const ParamSpec& s = specs[static_cast<size_t>(p.id)];
    if (p.dtype == StorageDtype::F32) {
      init_tensor(c, s, p.id, seed, p.data.f32(), backend, 0, p.numel());
    } else {
      for_each_piece(p.numel(), piece, [&](int64_t b, int64_t n) {
        init_tensor(c, s, p.id, seed, scratch.f32(), backend, b, n);
        backend.store(p.view().range(b, n), scratch.f32(), RoundingMode{Rounding::Nearest, 0, 0});
      });
    }
    done += p.numel();
    if (progress) progress(done, total);
  }
  backend.synchronize();  // the scratch is freed on return: nothing may still write it
}

namespace {

// The storage of tensor s: 2-D tensors in `dtype`, vectors in fp32 (model/params.h).
DType stored_as(const ParamSpec& s, StorageDtype dtype) {
  if (s.shape.size() != 2 || dtype == StorageDtype::F32) return DType::F32;
  return dtype == StorageDtype::BF16 ? DType::BF16 : DType::F16;
}

}  // namespace

uint64_t random_model_bytes(const ModelConfig& c, StorageDtype dtype) {
  uint64_t bytes = 0;
  for (const auto& s : expected_params(c)) {
    bytes += dtype_size(stored_as(s, dtype)) * static_cast<uint64_t>(spec_numel(s));
  }
  return bytes;
}

void write_random_model(const std::string& dir, const ModelConfig& c, uint64_t seed,
                        StorageDtype dtype, Backend& backend) {
  save_config(dir, c, dtype);
  const auto specs = expected_params(c);
  std::vector<TensorSpecOut> out;
  for (const auto& s : specs) out.push_back({s.name, s.shape, stored_as(s, dtype)});
  std::vector<float> values;
  std::vector<uint16_t> half;
  write_safetensors_streamed(
      (std::filesystem::path(dir) / "model.safetensors").string(), out, {{"format", "pt"}},
      [&](size_t i, const ByteSink& sink) {
        // A piece at a time (kStagingElems), written in order.
        for_each_piece(spec_numel(specs[i]), kStagingElems, [&](int64_t b, int64_t m) {
          const auto n = static_cast<size_t>(m);
          values.resize(n);
          init_tensor(c, specs[i], static_cast<int>(i), seed, values.data(), backend, b, m);
          if (out[i].dtype == DType::F32) {
            sink(values.data(), n * 4);
            return;
          }
          // Rounded to nearest, as Param::from_f32 stores a 16-bit parameter.
          half.resize(n);
          const bool bf16 = out[i].dtype == DType::BF16;
          for (size_t k = 0; k < n; ++k) {
            half[k] = bf16 ? f32_to_bf16(values[k]) : f32_to_f16(values[k]);
          }
          sink(half.data(), n * 2);
        });
      });
}

}  // namespace lomo
