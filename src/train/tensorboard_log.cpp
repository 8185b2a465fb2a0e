#include "train/tensorboard_log.h"

#include <unistd.h>

#include <filesystem>
#include <vector>

#include "core/error.h"

namespace lomo {

namespace {

// The table of the header, stated once.
struct TagOf {
  const char* field;
  const char* tag;
};
constexpr TagOf kTags[] = {
    {"loss", "train/loss"},
    {"lr", "train/lr"},
    {"tokens_per_s", "train/tokens_per_s"},
    {"grad_norm", "train/grad_norm"},
    {"loss_scale", "train/loss_scale"},
    {"memory_peak_bytes", "memory/tracked_peak_bytes"},
    {"rss_bytes", "memory/rss_bytes"},
    {"eval_loss", "eval/loss"},
    {"eval_accuracy", "eval/accuracy"},
};

}  // namespace

TensorBoardLog::TensorBoardLog(const std::string& dir) : dir_(dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(dir_, ec)) {
    fs::create_directories(dir_, ec);
    if (ec) {
      throw Error(dir_ + ": cannot create the TensorBoard log folder: " + ec.message() +
                  " (choose another --log-dir)");
    }
    made_dir_ = true;
  } else if (!fs::is_directory(dir_, ec) || ::access(dir_.c_str(), W_OK) != 0) {
    throw Error(dir_ + ": not a writable folder for TensorBoard logs (choose another --log-dir)");
  }
  try {
    file_ = std::make_unique<EventFileWriter>(dir_);
  } catch (const Error& e) {
    if (made_dir_) fs::remove(dir_, ec);
    throw Error(std::string(e.what()) + " (choose another --log-dir)");
  }
}

TensorBoardLog::~TensorBoardLog() {
  if (file_->scalar_events() > 0) return;
  namespace fs = std::filesystem;
  const std::string path = file_->path();
  file_.reset();
  std::error_code ec;
  fs::remove(path, ec);
  if (made_dir_ && fs::is_empty(dir_, ec)) fs::remove(dir_, ec);
}

void TensorBoardLog::write(const nlohmann::ordered_json& record) {
  LOMO_ASSERT(record.contains("step") && record["step"].is_number_integer(),
              "a log record without a step: " + record.dump());
  std::vector<EventFileWriter::Scalar> scalars;
  for (const TagOf& t : kTags) {
    const auto it = record.find(t.field);
    if (it != record.end() && it->is_number()) {
      scalars.push_back({t.tag, static_cast<float>(it->get<double>())});
    }
  }
  if (!scalars.empty()) file_->write_scalars(record["step"].get<int64_t>(), scalars);
}

}  // namespace lomo
