// One tracked allocator for every byte the engine owns (design §3). Each allocation names its
// category and comes from an Allocator that knows its device; the tracker keeps current and peak
// bytes per category, per device and in total, so the memory report is exact bytes, not an
// estimate.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace lomo {

// Where memory lives: the host, or accelerator `index` of a kind (CUDA).
struct Device {
  enum class Kind { Host, Cuda };
  Kind kind = Kind::Host;
  int index = 0;
  bool operator==(const Device&) const = default;
  static Device host() { return {}; }
};
inline constexpr int kMaxDevices = 9;  // the host and up to 8 accelerators
// The tracker's slot of a device: 0 for the host, 1 + index for an accelerator.
int device_slot(Device d);

enum class MemCategory { Parameters, Gradients, OptimizerStates, Activations, Workspace };
inline constexpr int kNumMemCategories = 5;

// "parameters", "gradients", "optimizer_states", "activations", "workspace" (memory.json keys).
const char* category_name(MemCategory c);

class MemoryTracker {
 public:
  void on_alloc(Device d, MemCategory c, size_t bytes);
  void on_free(Device d, MemCategory c, size_t bytes);

  // Over every device (one device in a single-device run).
  size_t current(MemCategory c) const { return current_[index(c)]; }
  size_t peak(MemCategory c) const { return peak_[index(c)]; }
  // On one device.
  size_t current(MemCategory c, Device d) const { return dev_current_[device_slot(d)][index(c)]; }
  size_t peak(MemCategory c, Device d) const { return dev_peak_[device_slot(d)][index(c)]; }
  size_t current_total() const { return total_; }
  size_t peak_total() const { return peak_total_; }
  // Restarts peak tracking from the current values (e.g. after loading, before training).
  void reset_peaks();

 private:
  static int index(MemCategory c) { return static_cast<int>(c); }
  std::array<size_t, kNumMemCategories> current_{};
  std::array<size_t, kNumMemCategories> peak_{};
  std::array<std::array<size_t, kNumMemCategories>, kMaxDevices> dev_current_{};
  std::array<std::array<size_t, kNumMemCategories>, kMaxDevices> dev_peak_{};
  size_t total_ = 0;
  size_t peak_total_ = 0;
};

// Where a Buffer's bytes come from. allocate() returns 64-byte aligned, zero-filled memory on
// device() or throws lomo::Error; deallocate() takes back exactly what allocate() gave.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual Device device() const = 0;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
};

// Host memory (aligned_alloc). Stateless: one instance serves every caller.
Allocator& host_allocator();

// A tracked, move-only block of memory from an Allocator (the host's unless given).
// Contents are zero-initialised.
class Buffer {
 public:
  Buffer() = default;
  Buffer(MemoryTracker& tracker, MemCategory category, size_t bytes)
      : Buffer(host_allocator(), tracker, category, bytes) {}
  Buffer(Allocator& allocator, MemoryTracker& tracker, MemCategory category, size_t bytes);
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  template <class T>
  T* as() {
    return static_cast<T*>(ptr_);
  }
  template <class T>
  const T* as() const {
    return static_cast<const T*>(ptr_);
  }
  float* f32() { return as<float>(); }
  const float* f32() const { return as<float>(); }
  size_t bytes() const { return bytes_; }
  bool empty() const { return ptr_ == nullptr; }
  void release();
  Allocator* allocator() const { return allocator_; }

 private:
  Allocator* allocator_ = nullptr;
  MemoryTracker* tracker_ = nullptr;
  MemCategory category_ = MemCategory::Workspace;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Host memory the engine owns in a standard container rather than a Buffer (the RoPE table),
// registered with the tracker for this object's lifetime so that the report and the planner see
// it. Move-only.
class TrackedHostBytes {
 public:
  TrackedHostBytes() = default;
  TrackedHostBytes(MemoryTracker& tracker, MemCategory category, size_t bytes);
  TrackedHostBytes(TrackedHostBytes&& other) noexcept;
  TrackedHostBytes& operator=(TrackedHostBytes&& other) noexcept;
  TrackedHostBytes(const TrackedHostBytes&) = delete;
  TrackedHostBytes& operator=(const TrackedHostBytes&) = delete;
  ~TrackedHostBytes();

 private:
  MemoryTracker* tracker_ = nullptr;
  MemCategory category_ = MemCategory::Workspace;
  size_t bytes_ = 0;
};

// Ensures `buf` holds at least `bytes` (reallocating from `allocator`, contents lost, if
// smaller). Lets a step reuse its activation and workspace blocks instead of allocating on every
// call.
void ensure_capacity(Buffer& buf, Allocator& allocator, MemoryTracker& tracker,
                     MemCategory category, size_t bytes);
inline void ensure_capacity(Buffer& buf, MemoryTracker& tracker, MemCategory category,
                            size_t bytes) {
  ensure_capacity(buf, host_allocator(), tracker, category, bytes);
}

// MemAvailable from /proc/meminfo: the host memory a run may still take, in bytes (0 if unknown).
size_t available_memory_bytes();
// Peak resident set size of this process (VmHWM), in bytes; 0 if unavailable.
size_t process_peak_rss_bytes();
// Resident set size of this process now (VmRSS), in bytes; 0 if unavailable.
size_t process_rss_bytes();

// "12.34 MiB" style formatting for tables.
std::string format_bytes(size_t bytes);

}  // namespace lomo
