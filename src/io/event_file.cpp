#include "io/event_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "io/tensorboard_event.pb.h"
#include "io/tfrecord.h"

namespace lomo {

namespace {

double wall_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

}  // namespace

EventFileWriter::EventFileWriter(const std::string& dir) {
  const std::string base = dir + "/events.out.tfevents." +
                           std::to_string(static_cast<int64_t>(wall_time_now())) + "." +
                           host_name();
  // O_EXCL: never append to (or clobber) another writer's file.
  for (int n = 0; fd_ < 0; ++n) {
    path_ = n == 0 ? base : base + "." + std::to_string(n);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0 && (errno != EEXIST || n >= 1000)) {
      throw Error(path_ + ": cannot create the TensorBoard event file: " + std::strerror(errno));
    }
  }
  tensorboard::Event e;
  e.set_wall_time(wall_time_now());
  e.set_file_version("brain.Event:2");
  write_event(e.SerializeAsString());
}

EventFileWriter::~EventFileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void EventFileWriter::write_scalars(int64_t step, const std::vector<Scalar>& scalars) {
  tensorboard::Event e;
  e.set_wall_time(wall_time_now());
  e.set_step(step);
  tensorboard::Summary* summary = e.mutable_summary();
  for (const Scalar& s : scalars) {
    tensorboard::Summary::Value* v = summary->add_value();
    v->set_tag(s.tag);
    v->set_simple_value(s.value);
  }
  write_event(e.SerializeAsString());
  ++scalar_events_;
}

void EventFileWriter::write_event(const std::string& serialized) {
  const std::string record = tfrecord_frame(serialized);
  size_t done = 0;
  while (done < record.size()) {
    const ssize_t n = ::write(fd_, record.data() + done, record.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw Error(path_ + ": cannot write the TensorBoard event file: " +
                  (n < 0 ? std::strerror(errno) : "no progress") + " (is the disk full?)");
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace lomo
