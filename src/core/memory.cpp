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

void MemoryTracker::on_alloc(MemCategory c, size_t bytes) {
  const int i = index(c);
  current_[i] += bytes;
  if (current_[i] > peak_[i]) peak_[i] = current_[i];
  total_ += bytes;
  if (total_ > peak_total_) peak_total_ = total_;
}

void MemoryTracker::on_free(MemCategory c, size_t bytes) {
  const int i = index(c);
  LOMO_ASSERT(current_[i] >= bytes && total_ >= bytes, category_name(c));
  current_[i] -= bytes;
  total_ -= bytes;
}

void MemoryTracker::reset_peaks() {
  peak_ = current_;
  peak_total_ = total_;
}

Buffer::Buffer(MemoryTracker& tracker, MemCategory category, size_t bytes)
    : tracker_(&tracker), category_(category), bytes_(bytes) {
  if (bytes == 0) return;
  const size_t rounded = (bytes + 63) / 64 * 64;
  ptr_ = std::aligned_alloc(64, rounded);
  if (ptr_ == nullptr) {
    throw Error("out of memory: could not allocate " + format_bytes(bytes) + " for " +
                category_name(category));
  }
  std::memset(ptr_, 0, rounded);
  tracker_->on_alloc(category_, bytes_);
}

Buffer::Buffer(Buffer&& other) noexcept
    : tracker_(other.tracker_), category_(other.category_), ptr_(other.ptr_), bytes_(other.bytes_) {
  other.ptr_ = nullptr;
  other.bytes_ = 0;
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    release();
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
    std::free(ptr_);
    tracker_->on_free(category_, bytes_);
  }
  ptr_ = nullptr;
  bytes_ = 0;
}

void ensure_capacity(Buffer& buf, MemoryTracker& tracker, MemCategory category, size_t bytes) {
  if (!buf.empty() && buf.bytes() >= bytes) return;
  buf.release();
  buf = Buffer(tracker, category, bytes);
}

size_t process_peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream is(line.substr(6));
      size_t kb = 0;
      is >> kb;
      return kb * 1024;
    }
  }
  return 0;
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
