// Device memory of one CUDA GPU as an Allocator (core/memory.h): plain cudaMalloc (never
// managed memory), zero-filled as the contract requires, counted by the tracker under the GPU's
// own slot.
#pragma once

#include <cstddef>

#include "core/memory.h"

namespace lomo::cuda {

class DeviceAllocator final : public Allocator {
 public:
  explicit DeviceAllocator(int device_index) : index_(device_index) {}
  Device device() const override { return {Device::Kind::Cuda, index_}; }
  // Throws lomo::Error naming the size and the GPU's free memory when cudaMalloc fails.
  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;

 private:
  int index_;
};

}  // namespace lomo::cuda
