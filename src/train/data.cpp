#include "train/data.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace lomo {

Dataset load_jsonl_ids(const std::string& path, const ModelConfig& config, int64_t seq_len) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open the data file");
  Dataset ds;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const std::string where = path + ":" + std::to_string(lineno);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(where + ": invalid JSON (" + e.what() + ")");
    }
    if (!j.is_object() || !j.contains("input_ids")) {
      throw Error(where + ": expected an object with \"input_ids\" (a list of token ids)");
    }
    const auto& ids = j["input_ids"];
    if (!ids.is_array()) throw Error(where + ": \"input_ids\" must be a list of token ids");
    Sequence s;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!ids[i].is_number_integer()) {
        throw Error(where + ": input_ids[" + std::to_string(i) + "] = " + ids[i].dump() +
                    " is not an integer");
      }
      const int64_t id = ids[i].get<int64_t>();
      if (id < 0 || id >= config.vocab) {
        throw Error(where + ": input_ids[" + std::to_string(i) + "] = " + std::to_string(id) +
                    " is outside the vocabulary [0, " + std::to_string(config.vocab) + ")");
      }
      s.ids.push_back(static_cast<int32_t>(id));
    }
    if (s.ids.size() < 2) {
      throw Error(where + ": a sequence needs at least 2 tokens to predict one (has " +
                  std::to_string(s.ids.size()) + ")");
    }
    if (static_cast<int64_t>(s.ids.size()) > config.max_position) {
      throw Error(where + ": " + std::to_string(s.ids.size()) +
                  " tokens exceed the model's context (max_position_embeddings = " +
                  std::to_string(config.max_position) + ")");
    }
    if (static_cast<int64_t>(s.ids.size()) > seq_len) {
      s.ids.resize(seq_len);
      ++ds.truncated;
    }
    ds.examples.push_back(std::move(s));
  }
  if (ds.examples.empty()) throw Error(path + ": the data file holds no examples");
  return ds;
}

BatchOrder::BatchOrder(int64_t n_examples, int64_t batch_size, Shuffle shuffle, uint64_t seed)
    : n_(n_examples), b_(batch_size), shuffle_(shuffle), seed_(seed) {}

std::vector<int64_t> BatchOrder::permutation(int64_t epoch) const {
  std::vector<int64_t> p(n_);
  std::iota(p.begin(), p.end(), 0);
  if (shuffle_ == Shuffle::Off) return p;
  for (int64_t i = n_ - 1; i > 0; --i) {  // Fisher-Yates, counter-based draws
    const uint64_t r = counter_random(seed_, 0x5348554646ull + static_cast<uint64_t>(epoch),
                                      static_cast<uint64_t>(i));
    std::swap(p[i], p[static_cast<int64_t>(r % static_cast<uint64_t>(i + 1))]);
  }
  return p;
}

std::vector<int64_t> BatchOrder::indices(int64_t step) const {
  std::vector<int64_t> out;
  int64_t cached_epoch = -1;
  std::vector<int64_t> perm;
  for (int64_t j = 0; j < b_; ++j) {
    const int64_t s = step * b_ + j;
    const int64_t epoch = s / n_;
    if (epoch != cached_epoch) {
      perm = permutation(epoch);
      cached_epoch = epoch;
    }
    out.push_back(perm[s % n_]);
  }
  return out;
}

}  // namespace lomo
