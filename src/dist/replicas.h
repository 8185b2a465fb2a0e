// Data parallelism's promise, checked: after training, every rank holds the same parameters, bit
// for bit. Each rank hashes its parameters' bytes; the hashes are gathered and compared.
#pragma once

#include <cstdint>
#include <string>

#include "dist/communicator.h"
#include "model/params.h"
#include "ops/backend.h"

namespace lomo {

// A 64-bit hash of every parameter's stored bytes, in order (device memory through the backend).
uint64_t parameter_hash(const ModelParams& params, Backend& backend);

// Throws lomo::Error naming the ranks whose parameters differ from rank 0's, `when` ("at the
// start", "after training"). Every rank calls it. Returns the common hash.
uint64_t check_replicas(const ModelParams& params, Backend& backend, Communicator& host,
                        const std::string& when);

}  // namespace lomo
