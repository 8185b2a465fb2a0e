// Checkpoints: a training run's whole state on disk, so that a run killed, interrupted or out of
// disk loses at most the steps since the last one, and a resumed run equals the uninterrupted
// run bit for bit.
//
// A checkpoint is a folder DIR/step-00000012 holding
//   state.safetensors  every parameter in its training dtype (raw: bf16 stays bf16) and every
//                      optimizer state (AdamW m and v, AdaLomo's factored second moments), fp32;
//   checkpoint.json    the step, the trainer's counters (AdaLomo / AdamW t, the fp16 loss scale
//                      and its clean-step count), the LM head's schedule, the settings that decide
//                      the result (run_identity) and the running summary.
// It is written into DIR/step-00000012.partial-<pid>, every file fsynced, then renamed into place
// and the folder fsynced: a checkpoint on disk is complete or absent, never torn. The data order
// and stochastic rounding are counter-based functions of (seed, step, …), so the step restores
// them; nothing else carries from step to step.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/params.h"
#include "train/trainer.h"

namespace lomo {

struct CheckpointMeta {
  int64_t step = 0;  // steps completed
  TrainerCounters counters;
  bool recompute_head = true;       // the LM head's schedule (its products round differently)
  nlohmann::ordered_json identity;  // run_identity() of the run that wrote it
  nlohmann::ordered_json summary;   // first loss, tokens, evaluations so far
};

// "step-00000012".
std::string checkpoint_name(int64_t step);

// Writes DIR/step-N for meta.step as above and returns its path. Throws lomo::Error naming the
// file on any failure (a full disk included), leaving every earlier checkpoint untouched.
std::string write_checkpoint(const std::string& dir, const CheckpointMeta& meta,
                             ModelParams& params, Trainer& trainer);

// Removes all but the newest `keep` complete checkpoints of DIR, and staging folders left by
// runs that died while writing.
void prune_checkpoints(const std::string& dir, int64_t keep);

// `path` is a checkpoint, or a folder of checkpoints (its newest complete one). Throws
// lomo::Error saying what was found when there is none.
std::string resolve_checkpoint(const std::string& path);

CheckpointMeta read_checkpoint_meta(const std::string& checkpoint);

// Parameters (bit-exact, any dtype) and optimizer states from `checkpoint`, checked tensor by
// tensor against the run's (a mismatch names the tensor).
void load_checkpoint_state(const std::string& checkpoint, ModelParams& params, Trainer& trainer);

// The differences between two run identities, one "--flag: checkpoint X, now Y" per entry;
// empty when they match.
std::vector<std::string> identity_differences(const nlohmann::ordered_json& saved,
                                              const nlohmann::ordered_json& now);

// A 64-bit FNV-1a digest of a file's bytes, as 16 hex digits (data identity for resume).
std::string file_digest(const std::string& path);

}  // namespace lomo
