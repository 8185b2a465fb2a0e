// --log-dir: the run's curves as TensorBoard scalars, beside the JSONL log (--log). Every record
// the run writes to the JSONL log, a step line or an evaluation line, is handed to write() too,
// and each of its numbers that has a tag below becomes a scalar at the record's "step":
//
//   JSONL field         TensorBoard tag              when
//   loss                train/loss                   every step
//   lr                  train/lr                     every step
//   tokens_per_s        train/tokens_per_s           every step
//   grad_norm           train/grad_norm              --clip-grad-norm (the norm pass measures it)
//   loss_scale          train/loss_scale             --dtype fp16
//   memory_peak_bytes   memory/tracked_peak_bytes    every step: the tracked allocator's peak
//   rss_bytes           memory/rss_bytes             every step: the process's resident set
//   eval_loss           eval/loss                    --eval-data without --task
//   eval_accuracy       eval/accuracy                --eval-data with --task
//
// So the event file and the JSONL log hold the same numbers by construction (TensorBoard's as
// float32); tests/tools/check_tensorboard.py reads both and compares.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "io/event_file.h"

namespace lomo {

class TensorBoardLog {
 public:
  // Makes `dir` (and its parents) if needed and starts a new event file in it. Called before the
  // model is read: throws lomo::Error naming the folder, and the flag, when it cannot be made or
  // written.
  explicit TensorBoardLog(const std::string& dir);
  TensorBoardLog(const TensorBoardLog&) = delete;
  TensorBoardLog& operator=(const TensorBoardLog&) = delete;
  // A run that failed before its first record leaves nothing: the event file goes, and the
  // folder too if this made it and it is empty.
  ~TensorBoardLog();

  // One JSONL record (it must have an integer "step"); fields without a tag are ignored.
  void write(const nlohmann::ordered_json& record);

  const std::string& event_file() const { return file_->path(); }

 private:
  std::string dir_;
  bool made_dir_ = false;
  std::unique_ptr<EventFileWriter> file_;
};

}  // namespace lomo
