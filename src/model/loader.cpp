#include "model/loader.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include "core/error.h"
#include "io/file.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/gguf_model.h"

namespace lomo {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> weight_files(const fs::path& dir) {
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(single)) return {single.string()};
  if (!fs::exists(index)) {
    throw Error(dir.string() +
                ": no weights found (expected model.safetensors or model.safetensors.index.json)");
  }
  std::ifstream in(index);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(index.string() + ": invalid JSON (" + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    throw Error(index.string() + ": needs a \"weight_map\" object");
  }
  std::set<std::string> files;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it->is_string())
      throw Error(index.string() + ": weight_map[\"" + it.key() + "\"] is not a file name");
    const std::string f = it->get<std::string>();
    if (f.find('/') != std::string::npos || f.find("..") != std::string::npos) {
      throw Error(index.string() + ": shard name \"" + f + "\" must be a plain file name");
    }
    files.insert(f);
  }
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back((dir / f).string());
  return out;
}

}  // namespace

namespace {

// A LoRA adapter folder given where a model is expected: say what it is and how to use it.
void refuse_adapter_folder(const fs::path& dir) {
  if (!fs::exists(dir / "config.json") && fs::exists(dir / "adapter_config.json")) {
    throw Error(dir.string() + " holds LoRA adapters (adapter_config.json), not a model: give the "
                "base model with --model and the adapters with --lora " + dir.string() +
                " (or train with --merge to get one model)");
  }
}

}  // namespace

Model load_model(const std::string& dir_str, MemoryTracker& tracker, StorageDtype dtype,
                 const ProgressFn& progress, int64_t staging_elems) {
  LOMO_ASSERT(staging_elems > 0, "load_model: empty staging");
  if (fs::is_regular_file(dir_str)) {
    if (is_gguf_file(dir_str)) {
      return load_gguf_model(dir_str, tracker, dtype, progress, staging_elems);
    }
    throw Error(dir_str + ": not a model (expected a GGUF file or a folder with config.json)");
  }
  const fs::path dir(dir_str);
  if (!fs::is_directory(dir)) {
    throw Error(dir_str +
                ": not a model folder or GGUF file (expected a directory with config.json, or a "
                ".gguf file)");
  }
  refuse_adapter_folder(dir);
  ModelConfig config = load_config((dir / "config.json").string());

  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::map<std::string, std::pair<const SafetensorsFile*, const TensorInfo*>> found;
  for (const auto& f : weight_files(dir)) {
    files.push_back(std::make_unique<SafetensorsFile>(f));
    for (const auto& t : files.back()->tensors()) {
      if (found.count(t.name)) {
        throw Error(f + ": tensor \"" + t.name + "\" also appears in " +
                    found[t.name].first->path());
      }
      found[t.name] = {files.back().get(), &t};
    }
  }

  const auto specs = expected_params(config);
  std::set<std::string> expected_names;
  for (const auto& s : specs) {
    expected_names.insert(s.name);
    auto it = found.find(s.name);
    if (it == found.end()) {
      throw Error(
          dir_str + ": tensor \"" + s.name + "\" is missing (the config implies it" +
          (s.name == "lm_head.weight" ? "; set tie_word_embeddings if the head is tied" : "") +
          ")");
    }
    if (it->second.second->shape != s.shape) {
      throw Error(it->second.first->path() + ": tensor \"" + s.name + "\": expected " +
                  shape_str(s.shape) + " from config.json, file has " +
                  shape_str(it->second.second->shape));
    }
  }
  for (const auto& [name, where] : found) {
    if (expected_names.count(name)) continue;
    if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;  // recomputed
    throw Error(where.first->path() + ": unexpected tensor \"" + name + "\" (not part of a " +
                arch_name(config.arch) + " with this config" +
                (name == "lm_head.weight" ? "; tie_word_embeddings is true" : "") + ")");
  }

  ModelParams params(config, tracker, dtype);
  std::vector<float> staging;  // (≤ staging_elems) a piece of a 16-bit tensor (init.h)
  const int64_t n = params.total_numel();  // progress counts parameters, not tensors
  int64_t done = 0;
  for (auto& p : params.all()) {
    if (progress) progress(done, n);
    done += p.numel();
    // Not a structured binding: clang (the fuzz build) cannot capture one in the lambda below.
    const auto& where = found.at(p.name);
    const auto& file = where.first;
    const auto& info = where.second;
    if (p.dtype == StorageDtype::F32) {
      file->read(*info, p.f());
      continue;
    }
    staging.resize(static_cast<size_t>(std::min(p.numel(), staging_elems)));
    for_each_piece(p.numel(), staging_elems, [&](int64_t b, int64_t m) {
      file->read(*info, b, m, staging.data());
      p.from_f32(staging.data(), b, m);
    });
  }
  if (progress) progress(n, n);
  return Model{std::move(config), std::move(params)};
}

void save_config(const std::string& dir, const ModelConfig& config, StorageDtype dtype) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create output folder: " + ec.message());
  nlohmann::json cj = config_to_json(config);
  if (dtype == StorageDtype::BF16) cj["torch_dtype"] = "bfloat16";
  if (dtype == StorageDtype::F16) cj["torch_dtype"] = "float16";
  write_file_atomic((fs::path(dir) / "config.json").string(), cj.dump(2) + "\n");
}

void save_model(const std::string& dir, const ModelConfig& config, const ModelParams& params,
                const ProgressFn& progress) {
  StorageDtype dtype = StorageDtype::F32;  // of the 2-D tensors; 1-D ones are always fp32
  for (const auto& p : params.all()) {
    if (p.dtype != StorageDtype::F32) dtype = p.dtype;
  }
  save_config(dir, config, dtype);
  std::vector<TensorView> views;
  for (const auto& p : params.all()) {
    views.push_back({p.name, p.shape, p.data.as<void>(),
                     p.dtype == StorageDtype::F32    ? DType::F32
                     : p.dtype == StorageDtype::BF16 ? DType::BF16
                                                     : DType::F16});
  }
  write_safetensors((fs::path(dir) / "model.safetensors").string(), views, {{"format", "pt"}},
                    progress);
}

ModelConfig load_model_config(const std::string& path) {
  if (fs::is_regular_file(path)) {
    if (is_gguf_file(path)) return config_from_gguf(GgufFile(path));
    throw Error(path + ": not a model (expected a GGUF file or a folder with config.json)");
  }
  if (!fs::is_directory(path)) {
    throw Error(path +
                ": not a model folder or GGUF file (expected a directory with config.json, or a "
                ".gguf file)");
  }
  refuse_adapter_folder(path);
  return load_config((fs::path(path) / "config.json").string());
}

void copy_tokenizer_files(const std::string& from, const std::string& to) {
  for (const char* f : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                        "special_tokens_map.json", "generation_config.json"}) {
    const fs::path src = fs::path(from) / f;
    if (!fs::exists(src)) continue;
    std::ifstream in(src, std::ios::binary);
    const std::string bytes{std::istreambuf_iterator<char>(in), {}};
    write_file_atomic((fs::path(to) / f).string(), bytes);
  }
}

}  // namespace lomo
