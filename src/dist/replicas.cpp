#include "dist/replicas.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"

namespace lomo {

namespace {

// FNV-1a over 64-bit words (a tail of fewer than 8 bytes padded with zeros): not cryptographic,
// it only has to tell two replicas apart.
uint64_t mix(uint64_t h, const unsigned char* bytes, size_t n) {
  constexpr uint64_t kPrime = 0x100000001b3ULL;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w = 0;
    for (int k = 0; k < 8; ++k) w |= static_cast<uint64_t>(bytes[i + k]) << (8 * k);
    h = (h ^ w) * kPrime;
  }
  uint64_t w = 0;
  for (int k = 0; i + k < n; ++k) w |= static_cast<uint64_t>(bytes[i + k]) << (8 * k);
  return (h ^ w ^ n) * kPrime;
}

}  // namespace

uint64_t parameter_hash(const ModelParams& params, Backend& backend) {
  uint64_t h = 0xcbf29ce484222325ULL;
  constexpr size_t kStage = size_t{16} << 20;  // device tensors come over in 16 MiB pieces
  std::vector<unsigned char> stage;
  for (const Param& p : params.all()) {
    const unsigned char* data = p.data.as<unsigned char>();
    const size_t bytes = static_cast<size_t>(p.numel()) * dtype_bytes(p.dtype);
    if (p.on_host()) {
      h = mix(h, data, bytes);
      continue;
    }
    stage.resize(std::min(bytes, kStage));
    for (size_t off = 0; off < bytes; off += kStage) {
      const size_t n = std::min(kStage, bytes - off);
      backend.copy_to_host(stage.data(), data + off, n);
      h = mix(h, stage.data(), n);
    }
  }
  return h;
}

uint64_t check_replicas(const ModelParams& params, Backend& backend, Communicator& host,
                        const std::string& when) {
  const std::vector<uint64_t> all = host.all_gather(parameter_hash(params, backend));
  std::string differ;
  for (size_t r = 1; r < all.size(); ++r) {
    if (all[r] != all[0]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  }
  if (!differ.empty()) {
    char h0[32];
    std::snprintf(h0, sizeof h0, "%016llx", static_cast<unsigned long long>(all[0]));
    throw Error("the ranks' parameters differ " + when + ": rank(s) " + differ +
                " do not match rank 0 (parameter hash " + h0 +
                "); data-parallel ranks must hold identical replicas (the same model files, "
                "identical updates)");
  }
  return all[0];
}

}  // namespace lomo
