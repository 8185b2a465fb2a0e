// One tracked allocator for every byte the engine owns (design §3). Each allocation names its
// category; the tracker keeps current and peak bytes per category and in total, so the memory
// report is exact bytes, not an estimate.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace lomo {

enum class MemCategory { Parameters, Gradients, OptimizerStates, Activations, Workspace };
inline constexpr int kNumMemCategories = 5;

// "parameters", "gradients", "optimizer_states", "activations", "workspace" (memory.json keys).
const char* category_name(MemCategory c);

class MemoryTracker {
 public:
  void on_alloc(MemCategory c, size_t bytes);
  void on_free(MemCategory c, size_t bytes);

  size_t current(MemCategory c) const { return current_[index(c)]; }
  size_t peak(MemCategory c) const { return peak_[index(c)]; }
  size_t current_total() const { return total_; }
  size_t peak_total() const { return peak_total_; }
  // Restarts peak tracking from the current values (e.g. after loading, before training).
  void reset_peaks();

 private:
  static int index(MemCategory c) { return static_cast<int>(c); }
  std::array<size_t, kNumMemCategories> current_{};
  std::array<size_t, kNumMemCategories> peak_{};
  size_t total_ = 0;
  size_t peak_total_ = 0;
};

// A 64-byte aligned, tracked, move-only block of memory. Contents are zero-initialised.
class Buffer {
 public:
  Buffer() = default;
  Buffer(MemoryTracker& tracker, MemCategory category, size_t bytes);
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

 private:
  MemoryTracker* tracker_ = nullptr;
  MemCategory category_ = MemCategory::Workspace;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Ensures `buf` holds at least `bytes` (reallocating, contents lost, if smaller). Lets a step
// reuse its activation and workspace blocks instead of allocating on every call.
void ensure_capacity(Buffer& buf, MemoryTracker& tracker, MemCategory category, size_t bytes);

// Peak resident set size of this process (VmHWM), in bytes; 0 if unavailable.
size_t process_peak_rss_bytes();

// "12.34 MiB" style formatting for tables.
std::string format_bytes(size_t bytes);

}  // namespace lomo
