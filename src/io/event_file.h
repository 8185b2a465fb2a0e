// A TensorBoard event file: DIR/events.out.tfevents.<unix time>.<hostname>, a sequence of
// TFRecords (io/tfrecord.h) each holding one Event (io/tensorboard_event.proto). The first
// record is the file-version event "brain.Event:2"; then one event per write_scalars() call.
// Each record reaches the file in one write() as it is made (nothing is buffered in the
// process), so a run killed midway leaves a file that TensorBoard reads up to its last step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lomo {

class EventFileWriter {
 public:
  struct Scalar {
    std::string tag;  // e.g. "train/loss": TensorBoard groups the charts by the part before '/'
    float value;      // TensorBoard's simple_value is a float
  };

  // Creates a new event file in `dir`, which must exist and be writable (a name already taken,
  // as by a second run started in the same second, gets a ".N" suffix). Throws lomo::Error
  // naming the path otherwise.
  explicit EventFileWriter(const std::string& dir);
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;
  ~EventFileWriter();

  // One event at `step`, stamped with the current wall time, holding every scalar given.
  // Throws lomo::Error naming the file if it cannot be written.
  void write_scalars(int64_t step, const std::vector<Scalar>& scalars);

  const std::string& path() const { return path_; }
  int64_t scalar_events() const { return scalar_events_; }  // write_scalars() calls so far

 private:
  void write_event(const std::string& serialized);

  std::string path_;
  int fd_ = -1;
  int64_t scalar_events_ = 0;
};

}  // namespace lomo
