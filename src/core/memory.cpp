#include "core/memory.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>
#include <utility>

#include "core/error.h"

namespace lomo {

const char* category_name(MemCategory c) {
  switch (c) {
    case MemCategory::Parameters:
      return "parameters";
    case MemCategory::Gradients:
      return "gradients";
    case MemCategory::OptimizerStates:
      return "optimizer_states";
    case MemCategory::Activations:
      return "activations";
    case MemCategory::Workspace:
      return "workspace";
  }
  return "?";
}

int device_slot(Device d) {
  const int slot = d.kind == Device::Kind::Host ? 0 : 1 + d.index;
  LOMO_ASSERT(slot >= 0 && slot < kMaxDevices, "device index out of range");
  return slot;
}

void MemoryTracker::on_alloc(Device d, MemCategory c, size_t bytes) {
  const int i = index(c), s = device_slot(d);
  current_[i] += bytes;
  if (current_[i] > peak_[i]) peak_[i] = current_[i];
  dev_current_[s][i] += bytes;
  if (dev_current_[s][i] > dev_peak_[s][i]) dev_peak_[s][i] = dev_current_[s][i];
  total_ += bytes;
  if (total_ > peak_total_) peak_total_ = total_;
}

void MemoryTracker::on_free(Device d, MemCategory c, size_t bytes) {
  const int i = index(c), s = device_slot(d);
  LOMO_ASSERT(current_[i] >= bytes && total_ >= bytes && dev_current_[s][i] >= bytes,
              category_name(c));
  current_[i] -= bytes;
  dev_current_[s][i] -= bytes;
  total_ -= bytes;
}

void MemoryTracker::reset_peaks() {
  peak_ = current_;
  dev_peak_ = dev_current_;
  peak_total_ = total_;
}

namespace {

class HostAllocator final : public Allocator {
 public:
  Device device() const override { return Device::host(); }
  void* allocate(size_t bytes) override {
    const size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (p == nullptr) throw Error("out of memory: could not allocate " + format_bytes(bytes));
    std::memset(p, 0, rounded);
    return p;
  }
  void deallocate(void* p, size_t) override { std::free(p); }
};

}  // namespace

Allocator& host_allocator() {
  static HostAllocator host;  // stateless
  return host;
}

Buffer::Buffer(Allocator& allocator, MemoryTracker& tracker, MemCategory category, size_t bytes)
    : allocator_(&allocator), tracker_(&tracker), category_(category), bytes_(bytes) {
  if (bytes == 0) return;
  try {
    ptr_ = allocator.allocate(bytes);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " for " + category_name(category));
  }
  tracker_->on_alloc(allocator.device(), category_, bytes_);
}

Buffer::Buffer(Buffer&& other) noexcept
    : allocator_(other.allocator_),
      tracker_(other.tracker_),
      category_(other.category_),
      ptr_(other.ptr_),
      bytes_(other.bytes_) {
  other.ptr_ = nullptr;
  other.bytes_ = 0;
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    release();
    allocator_ = other.allocator_;
    tracker_ = other.tracker_;
    category_ = other.category_;
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

Buffer::~Buffer() {
  release();
}

void Buffer::release() {
  if (ptr_ != nullptr) {
    allocator_->deallocate(ptr_, bytes_);
    tracker_->on_free(allocator_->device(), category_, bytes_);
  }
  ptr_ = nullptr;
  bytes_ = 0;
}

TrackedHostBytes::TrackedHostBytes(MemoryTracker& tracker, MemCategory category, size_t bytes)
    : tracker_(&tracker), category_(category), bytes_(bytes) {
  tracker_->on_alloc(Device::host(), category_, bytes_);
}

TrackedHostBytes::TrackedHostBytes(TrackedHostBytes&& other) noexcept
    : tracker_(other.tracker_), category_(other.category_), bytes_(other.bytes_) {
  other.tracker_ = nullptr;
  other.bytes_ = 0;
}

TrackedHostBytes& TrackedHostBytes::operator=(TrackedHostBytes&& other) noexcept {
  if (this != &other) {
    if (tracker_) tracker_->on_free(Device::host(), category_, bytes_);
    tracker_ = other.tracker_;
    category_ = other.category_;
    bytes_ = other.bytes_;
    other.tracker_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

TrackedHostBytes::~TrackedHostBytes() {
  if (tracker_) tracker_->on_free(Device::host(), category_, bytes_);
}

void ensure_capacity(Buffer& buf, Allocator& allocator, MemoryTracker& tracker,
                     MemCategory category, size_t bytes) {
  if (!buf.empty() && buf.bytes() >= bytes && buf.allocator() == &allocator) return;
  buf.release();
  buf = Buffer(allocator, tracker, category, bytes);
}

namespace {

// A "Key:   123 kB" line of /proc/self/status, in bytes; 0 if absent.
size_t proc_status_bytes(const std::string& key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key, 0) == 0) {
      std::istringstream is(line.substr(key.size()));
      size_t kb = 0;
      is >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

}  // namespace

size_t process_peak_rss_bytes() {
  return proc_status_bytes("VmHWM:");
}

size_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream is(line.substr(13));
      size_t kb = 0;
      is >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

size_t process_rss_bytes() {
  return proc_status_bytes("VmRSS:");
}

std::string format_bytes(size_t bytes) {
  char buf[64];
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  } else if (b >= 1024.0 * 1024) {
    std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1024.0 * 1024));
  } else if (b >= 1024.0) {
    std::snprintf(buf, sizeof buf, "%.2f KiB", b / 1024.0);
  } else {
    std::snprintf(buf, sizeof buf, "%zu B", bytes);
  }
  return buf;
}

}  // namespace lomo
