// Storage types of tensors. Compute is fp32 whatever the storage (design §4); a 16-bit tensor is
// read into fp32 and written back once, rounded.
#pragma once

#include <cstddef>

namespace lomo {

enum class StorageDtype { F32, BF16, F16 };

inline size_t dtype_bytes(StorageDtype t) { return t == StorageDtype::F32 ? 4 : 2; }

}  // namespace lomo
