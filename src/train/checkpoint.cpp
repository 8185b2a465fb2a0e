#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/file.h"
#include "io/safetensors.h"

namespace lomo {

namespace fs = std::filesystem;

namespace {

constexpr const char* kState = "state.safetensors";
constexpr const char* kMeta = "checkpoint.json";

// A folder's entries reach the disk only when the folder itself is synced.
void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

DType file_dtype(StorageDtype t) {
  switch (t) {
    case StorageDtype::BF16:
      return DType::BF16;
    case StorageDtype::F16:
      return DType::F16;
    case StorageDtype::F32:
      break;
  }
  return DType::F32;
}

// "step-00000012" → 12; anything else (staging folders included) → −1.
int64_t step_of(const std::string& name) {
  if (name.size() != 13 || name.rfind("step-", 0) != 0) return -1;
  int64_t s = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    s = s * 10 + (name[i] - '0');
  }
  return s;
}

bool complete(const fs::path& p) {
  return fs::is_regular_file(p / kMeta) && fs::is_regular_file(p / kState);
}

// The complete checkpoints of `dir`, oldest first.
std::vector<fs::path> checkpoints_in(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const int64_t s = step_of(e.path().filename().string());
    if (s >= 0 && complete(e.path())) found.emplace_back(s, e.path());
  }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

nlohmann::ordered_json meta_json(const CheckpointMeta& m) {
  nlohmann::ordered_json j;
  j["format"] = "lomo-checkpoint-1";
  j["step"] = m.step;
  j["counters"] = {{"adalomo_steps", m.counters.adalomo_steps},
                   {"adamw_steps", m.counters.adamw_steps},
                   {"loss_scale", m.counters.loss_scale},
                   {"clean_steps", m.counters.clean_steps}};
  j["recompute_head"] = m.recompute_head;
  j["identity"] = m.identity;
  j["summary"] = m.summary;
  return j;
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char s[32];
  std::snprintf(s, sizeof s, "step-%08lld", static_cast<long long>(step));
  return s;
}

std::string write_checkpoint(const std::string& dir, const CheckpointMeta& meta,
                             ModelParams& params, Trainer& trainer) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create the checkpoint folder: " + ec.message());
  const fs::path final_path = fs::path(dir) / checkpoint_name(meta.step);
  const fs::path staging =
      fs::path(dir) / (checkpoint_name(meta.step) + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) throw Error(staging.string() + ": cannot create: " + ec.message());
  try {
    Backend& backend = trainer.model().backend();
    std::vector<TensorView> tensors;
    std::vector<std::vector<float>> host;  // states that live on a device, copied out
    std::vector<std::vector<char>> host_params;  // parameters that live on a device, copied out
    host_params.reserve(params.all().size());
    for (Param& p : params.all()) {
      const void* data = p.data.as<void>();
      if (!p.on_host()) {
        host_params.emplace_back(p.data.bytes());
        backend.copy_to_host(host_params.back().data(), data, p.data.bytes());
        data = host_params.back().data();
      }
      tensors.push_back({p.name, p.shape, data, file_dtype(p.dtype)});
    }
    const auto states = trainer.state_tensors();
    host.reserve(states.size());
    for (const auto& s : states) {
      const auto n = static_cast<int64_t>(s.buffer->bytes() / 4);
      const void* data = s.buffer->as<void>();
      if (s.buffer->allocator() && !(s.buffer->allocator()->device() == Device::host())) {
        host.emplace_back(static_cast<size_t>(n));
        backend.copy_to_host(host.back().data(), data, s.buffer->bytes());
        data = host.back().data();
      }
      tensors.push_back({"optimizer." + s.name, {n}, data, DType::F32});
    }
    write_safetensors((staging / kState).string(), tensors, {{"format", "lomo-checkpoint-1"}});
    write_file_atomic((staging / kMeta).string(), meta_json(meta).dump(2) + "\n");
    fsync_dir(staging.string());
    // Same step written again (a resumed run saving where it started): the old copy goes only
    // after the new one is in place.
    const fs::path old = final_path.string() + ".old-" + std::to_string(::getpid());
    if (fs::exists(final_path)) fs::rename(final_path, old);
    fs::rename(staging, final_path);
    fsync_dir(dir);
    fs::remove_all(old, ec);
  } catch (const std::exception& e) {
    fs::remove_all(staging, ec);
    throw Error(final_path.string() + ": cannot write the checkpoint (the earlier ones are " +
                "intact): " + e.what());
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
  return final_path.string();
}

void prune_checkpoints(const std::string& dir, int64_t keep) {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) == 0 && step_of(name) < 0) stale.push_back(e.path());
  }
  for (const auto& p : stale) fs::remove_all(p, ec);
  const auto all = checkpoints_in(dir);
  for (size_t i = 0; i + static_cast<size_t>(std::max<int64_t>(keep, 1)) < all.size(); ++i) {
    fs::remove_all(all[i], ec);
  }
}

std::string resolve_checkpoint(const std::string& path) {
  const fs::path p(path);
  if (complete(p)) return p.string();
  if (!fs::is_directory(p)) {
    throw Error("--resume " + path + ": no such checkpoint or folder of checkpoints");
  }
  const auto all = checkpoints_in(p);
  if (all.empty()) {
    throw Error("--resume " + path + ": no complete checkpoint here (a checkpoint holds " +
                kMeta + " and " + kState + "; a folder of them holds step-NNNNNNNN folders)");
  }
  return all.back().string();
}

CheckpointMeta read_checkpoint_meta(const std::string& checkpoint) {
  const std::string path = (fs::path(checkpoint) / kMeta).string();
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  nlohmann::ordered_json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  if (j.value("format", "") != "lomo-checkpoint-1") {
    throw Error(path + ": not a lomo checkpoint (format \"" + j.value("format", "") + "\")");
  }
  CheckpointMeta m;
  try {
    m.step = j.at("step").get<int64_t>();
    const auto& c = j.at("counters");
    m.counters.adalomo_steps = c.at("adalomo_steps").get<int64_t>();
    m.counters.adamw_steps = c.at("adamw_steps").get<int64_t>();
    m.counters.loss_scale = c.at("loss_scale").get<double>();
    m.counters.clean_steps = c.at("clean_steps").get<int64_t>();
    m.recompute_head = j.at("recompute_head").get<bool>();
    m.identity = j.at("identity");
    m.summary = j.at("summary");
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": " + e.what());
  }
  return m;
}

void load_checkpoint_state(const std::string& checkpoint, ModelParams& params, Trainer& trainer) {
  const SafetensorsFile f((fs::path(checkpoint) / kState).string());
  auto tensor = [&](const std::string& name, int64_t numel) -> const TensorInfo& {
    const TensorInfo* t = f.find(name);
    if (t == nullptr) throw Error(f.path() + ": has no tensor " + name);
    if (t->numel() != numel) {
      throw Error(f.path() + ": " + name + " has " + std::to_string(t->numel()) +
                  " elements, the run needs " + std::to_string(numel));
    }
    return *t;
  };
  Backend& backend = trainer.model().backend();
  std::vector<float> staging;
  for (Param& p : params.all()) {
    const TensorInfo& t = tensor(p.name, p.numel());
    if (t.dtype != file_dtype(p.dtype)) {
      throw Error(f.path() + ": " + p.name + " is " + dtype_name(t.dtype) +
                  ", the run stores it as " + dtype_name(file_dtype(p.dtype)));
    }
    if (p.dtype == StorageDtype::F32 && p.on_host()) {
      f.read(t, p.f());
    } else {
      // bf16/fp16 → fp32 → the same bf16/fp16 bits: exact both ways.
      staging.resize(static_cast<size_t>(p.numel()));
      f.read(t, staging.data());
      p.from_f32(staging.data(), backend);
    }
  }
  for (const auto& s : trainer.state_tensors()) {
    const auto n = static_cast<int64_t>(s.buffer->bytes() / 4);
    const TensorInfo& t = tensor("optimizer." + s.name, n);
    staging.resize(static_cast<size_t>(n));
    f.read(t, staging.data());
    backend.copy_to_device(s.buffer->as<void>(), staging.data(), s.buffer->bytes());
  }
}

std::vector<std::string> identity_differences(const nlohmann::ordered_json& saved,
                                              const nlohmann::ordered_json& now) {
  std::vector<std::string> out;
  for (const auto& [k, v] : now.items()) {
    const auto it = saved.find(k);
    const std::string was = it == saved.end() ? "(not recorded)" : it->dump();
    if (it == saved.end() || *it != v) {
      out.push_back("--" + k + ": the checkpoint's run had " + was + ", this run has " +
                    v.dump());
    }
  }
  // Settings recorded only when on (LoRA's): the checkpoint's run had them, this run does not.
  for (const auto& [k, v] : saved.items()) {
    if (!now.contains(k) && k.rfind("lora-", 0) == 0) {
      out.push_back("--" + k + ": the checkpoint's run had " + v.dump() + ", this run has none");
    }
  }
  return out;
}

std::string file_digest(const std::string& path) {
  const InputFile f(path);
  uint64_t h = 0xcbf29ce484222325ull;
  std::vector<unsigned char> buf(1 << 20);
  for (uint64_t off = 0; off < f.size(); off += buf.size()) {
    const auto n = static_cast<size_t>(std::min<uint64_t>(buf.size(), f.size() - off));
    f.read_at(off, buf.data(), n);
    for (size_t i = 0; i < n; ++i) h = (h ^ buf[i]) * 0x100000001b3ull;
  }
  char s[17];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(h));
  return s;
}

}  // namespace lomo
