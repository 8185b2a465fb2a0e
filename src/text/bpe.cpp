#include "text/bpe.h"

#include <algorithm>

#include "core/error.h"
#include "text/unicode.h"

namespace lomo::text {

namespace {

// The pre-tokenizer regexes as they appear in tokenizer.json "Split" entries.
const char* const kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char* const kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kQwen2Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

bool is_byte_level(const nlohmann::json& p, bool use_regex) {
  return p.is_object() && p.value("type", "") == "ByteLevel" &&
         p.value("use_regex", true) == use_regex && !p.value("add_prefix_space", false);
}

PreTokenizer parse_pre_tokenizer(const nlohmann::json& p, const std::string& source) {
  auto fail = [&]() -> PreTokenizer {
    throw Error(source + ": pre_tokenizer " + p.dump().substr(0, 300) +
                " is not supported (byte-level BPE with the gpt2, llama-bpe, qwen2 or smollm "
                "pre-tokenizer)");
  };
  if (is_byte_level(p, true)) return PreTokenizer::Gpt2;
  if (!p.is_object() || p.value("type", "") != "Sequence" || !p.contains("pretokenizers"))
    return fail();
  const auto& seq = p["pretokenizers"];
  if (seq.size() != 2) return fail();
  const auto& a = seq[0];
  const auto& b = seq[1];
  if (a.value("type", "") == "Digits" && a.value("individual_digits", false) &&
      is_byte_level(b, true)) {
    return PreTokenizer::SmolLM;
  }
  if (a.value("type", "") == "Split" && a.value("behavior", "") == "Isolated" &&
      !a.value("invert", false) && a.contains("pattern") && a["pattern"].contains("Regex") &&
      is_byte_level(b, false)) {
    const std::string re = a["pattern"]["Regex"].get<std::string>();
    if (re == kLlama3Pattern) return PreTokenizer::Llama3;
    if (re == kQwen2Pattern) return PreTokenizer::Qwen2;
    if (re == kGpt2Pattern) return PreTokenizer::Gpt2;
  }
  return fail();
}

bool parse_normalizer(const nlohmann::json& n, const std::string& source) {
  if (n.is_null()) return false;
  if (n.value("type", "") == "NFC") return true;
  if (n.value("type", "") == "Sequence" && n.contains("normalizers") && n["normalizers"].empty()) {
    return false;
  }
  throw Error(source + ": normalizer " + n.dump().substr(0, 200) +
              " is not supported (null or NFC)");
}

// GPT-2's reversible map from bytes to printable code points.
void make_byte_map(std::string (&byte_to_char)[256], std::unordered_map<char32_t, uint8_t>& back) {
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable =
        (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const char32_t c = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
    byte_to_char[b].clear();
    append_utf8(byte_to_char[b], c);
    back[c] = static_cast<uint8_t>(b);
  }
}

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

size_t utf8_len(unsigned char b) {
  return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

}  // namespace

BpeParts parse_tokenizer_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) {
    throw Error(source + ": not a tokenizer.json (no \"model\" object)");
  }
  const auto& m = j["model"];
  if (m.value("type", "BPE") != "BPE") {
    throw Error(source + ": model type \"" + m.value("type", "") + "\" is not supported (BPE)");
  }
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.contains(k) && !m[k].is_null() && m[k] != "") {
      throw Error(source + ": model." + k + " is not supported");
    }
  }
  BpeParts p;
  p.pre = parse_pre_tokenizer(j.value("pre_tokenizer", nlohmann::json()), source);
  p.nfc = parse_normalizer(j.value("normalizer", nlohmann::json()), source);
  p.ignore_merges = m.value("ignore_merges", false);
  if (!m.contains("vocab") || !m["vocab"].is_object())
    throw Error(source + ": model.vocab missing");
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    const int64_t id = it->get<int64_t>();
    if (id < 0 || id > (1 << 24))
      throw Error(source + ": token \"" + it.key() + "\" has id " + std::to_string(id));
    if (static_cast<size_t>(id) >= p.tokens.size()) p.tokens.resize(id + 1);
    p.tokens[id] = it.key();
  }
  for (const auto& mg : m.value("merges", nlohmann::json::array())) {
    if (mg.is_string()) {
      const std::string s = mg.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) throw Error(source + ": merge \"" + s + "\" is not \"a b\"");
      p.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
      p.merges.emplace_back(mg[0].get<std::string>(), mg[1].get<std::string>());
    } else {
      throw Error(source + ": malformed merge " + mg.dump());
    }
  }
  for (const auto& t : j.value("added_tokens", nlohmann::json::array())) {
    AddedToken a;
    a.content = t.at("content").get<std::string>();
    a.id = t.at("id").get<int32_t>();
    a.special = t.value("special", false);
    a.lstrip = t.value("lstrip", false);
    a.rstrip = t.value("rstrip", false);
    if (!a.content.empty()) p.added.push_back(a);
  }
  // BOS from a TemplateProcessing post-processor whose single template starts with a special token.
  std::vector<nlohmann::json> procs;
  if (j.contains("post_processor") && j["post_processor"].is_object()) {
    const auto& pp = j["post_processor"];
    if (pp.value("type", "") == "Sequence") {
      for (const auto& x : pp.value("processors", nlohmann::json::array())) procs.push_back(x);
    } else {
      procs.push_back(pp);
    }
  }
  for (const auto& x : procs) {
    if (x.value("type", "") != "TemplateProcessing" || !x.contains("single")) continue;
    const auto& single = x["single"];
    if (!single.empty() && single[0].contains("SpecialToken")) {
      const std::string name = single[0]["SpecialToken"].value("id", "");
      const auto& st = x.value("special_tokens", nlohmann::json::object());
      if (st.contains(name) && st[name].contains("ids") && !st[name]["ids"].empty()) {
        p.bos_id = st[name]["ids"][0].get<int32_t>();
        p.add_bos = true;
      }
    }
  }
  return p;
}

nlohmann::json to_tokenizer_json(const BpeParts& p) {
  nlohmann::json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  nlohmann::json added = nlohmann::json::array();
  std::vector<AddedToken> sorted = p.added;
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  for (const auto& a : sorted) {
    added.push_back({{"id", a.id},
                     {"content", a.content},
                     {"single_word", false},
                     {"lstrip", a.lstrip},
                     {"rstrip", a.rstrip},
                     {"normalized", false},
                     {"special", a.special}});
  }
  j["added_tokens"] = added;
  j["normalizer"] = p.nfc ? nlohmann::json{{"type", "NFC"}} : nlohmann::json(nullptr);
  const nlohmann::json byte_level_regex = {{"type", "ByteLevel"},
                                           {"add_prefix_space", false},
                                           {"trim_offsets", true},
                                           {"use_regex", true}};
  const nlohmann::json byte_level_plain = {{"type", "ByteLevel"},
                                           {"add_prefix_space", false},
                                           {"trim_offsets", true},
                                           {"use_regex", false}};
  switch (p.pre) {
    case PreTokenizer::Gpt2:
      j["pre_tokenizer"] = byte_level_regex;
      break;
    case PreTokenizer::SmolLM:
      j["pre_tokenizer"] = {
          {"type", "Sequence"},
          {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level_regex}}};
      break;
    case PreTokenizer::Llama3:
    case PreTokenizer::Qwen2:
      j["pre_tokenizer"] = {
          {"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"},
             {"pattern",
              {{"Regex", p.pre == PreTokenizer::Llama3 ? kLlama3Pattern : kQwen2Pattern}}},
             {"behavior", "Isolated"},
             {"invert", false}},
            byte_level_plain}}};
      break;
  }
  if (p.add_bos && p.bos_id >= 0) {
    const std::string bos = p.tokens.at(p.bos_id);
    j["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
          {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{bos, {{"id", bos}, {"ids", {p.bos_id}}, {"tokens", {bos}}}}}}};
  } else {
    j["post_processor"] = nullptr;
  }
  j["decoder"] = {{"type", "ByteLevel"},
                  {"add_prefix_space", true},
                  {"trim_offsets", true},
                  {"use_regex", true}};
  nlohmann::json vocab = nlohmann::json::object();
  for (size_t i = 0; i < p.tokens.size(); ++i) vocab[p.tokens[i]] = i;
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& [a, b] : p.merges) merges.push_back({a, b});
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", p.ignore_merges},
                {"vocab", vocab},
                {"merges", merges}};
  return j;
}

BpeTokenizer::BpeTokenizer(BpeParts parts) : parts_(std::move(parts)) {
  const BpeParts& p = parts_;
  pre_ = p.pre;
  nfc_ = p.nfc;
  ignore_merges_ = p.ignore_merges;
  bos_id = p.bos_id;
  eos_id = p.eos_id;
  add_bos = p.add_bos;
  id_to_token_ = p.tokens;
  for (size_t i = 0; i < p.tokens.size(); ++i) {
    if (!p.tokens[i].empty()) vocab_.emplace(p.tokens[i], static_cast<int32_t>(i));
  }
  int32_t rank = 0;
  for (const auto& [a, b] : p.merges) {
    const auto ia = vocab_.find(a), ib = vocab_.find(b), im = vocab_.find(a + b);
    if (ia == vocab_.end() || ib == vocab_.end() || im == vocab_.end()) {
      throw Error("merge \"" + a + " " + b + "\" uses a token missing from the vocabulary");
    }
    merges_.emplace(pair_key(ia->second, ib->second), std::make_pair(rank++, im->second));
  }
  for (const auto& a : p.added) {
    if (a.id < 0) throw Error("added token \"" + a.content + "\" has a negative id");
    if (static_cast<size_t>(a.id) >= id_to_token_.size()) id_to_token_.resize(a.id + 1);
    id_to_token_[a.id] = a.content;
    added_.push_back(a);
  }
  // Longest first, so the first hit at a position is the longest (leftmost-longest matching).
  std::stable_sort(added_.begin(), added_.end(), [](const AddedToken& x, const AddedToken& y) {
    return x.content.size() > y.content.size();
  });
  added_index_.assign(id_to_token_.size(), -1);
  for (size_t i = 0; i < added_.size(); ++i) {
    added_index_[added_[i].id] = static_cast<int>(i);
    added_by_first_byte_[static_cast<unsigned char>(added_[i].content[0])].push_back(
        static_cast<int>(i));
  }
  make_byte_map(byte_to_char_, char_to_byte_);
}

std::string BpeTokenizer::kind() const {
  return std::string("bpe (") + pre_tokenizer_name(pre_) + ")";
}

int32_t BpeTokenizer::token_id(const std::string& token) const {
  const auto it = vocab_.find(token);
  if (it != vocab_.end()) return it->second;
  for (const auto& a : added_) {
    if (a.content == token) return a.id;
  }
  return -1;
}

void BpeTokenizer::encode_piece(std::string_view mapped, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    const auto it = vocab_.find(std::string(mapped));
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = cache_.find(std::string(mapped));
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> sym;
  for (size_t i = 0; i < mapped.size();) {
    const size_t n = utf8_len(static_cast<unsigned char>(mapped[i]));
    const auto it = vocab_.find(std::string(mapped.substr(i, n)));
    if (it != vocab_.end())
      sym.push_back(it->second);  // characters outside the vocabulary are dropped
    i += n;
  }
  // Merge the adjacent pair of lowest rank (leftmost on ties) until none is listed.
  while (sym.size() > 1) {
    int32_t best_rank = INT32_MAX, best_id = -1;
    size_t best_pos = 0;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      const auto it = merges_.find(pair_key(sym[i], sym[i + 1]));
      if (it != merges_.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        best_id = it->second.second;
        best_pos = i;
      }
    }
    if (best_id < 0) break;
    sym[best_pos] = best_id;
    sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(best_pos) + 1);
  }
  out.insert(out.end(), sym.begin(), sym.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() > (1u << 18)) cache_.clear();
  cache_.emplace(std::string(mapped), std::move(sym));
}

void BpeTokenizer::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  const std::string normalized = nfc_ ? nfc(text) : std::string(text);
  const std::u32string cps = utf8_to_u32(normalized);
  std::string mapped;
  for (const auto& [b, e] : pre_tokenize(pre_, cps)) {
    mapped.clear();
    std::string bytes;
    for (size_t i = b; i < e; ++i) append_utf8(bytes, cps[i]);
    for (unsigned char c : bytes) mapped += byte_to_char_[c];
    encode_piece(mapped, out);
  }
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  size_t start = 0, i = 0;
  auto is_ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (i < text.size()) {
    const AddedToken* hit = nullptr;
    for (int k : added_by_first_byte_[static_cast<unsigned char>(text[i])]) {
      const AddedToken& a = added_[k];
      if (text.compare(i, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    size_t plain_end = i;
    if (hit->lstrip) {
      while (plain_end > start && is_ws(text[plain_end - 1])) --plain_end;
    }
    encode_plain(text.substr(start, plain_end - start), out);
    out.push_back(hit->id);
    i += hit->content.size();
    if (hit->rstrip) {
      while (i < text.size() && is_ws(text[i])) ++i;
    }
    start = i;
  }
  encode_plain(text.substr(start), out);
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) {
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                  std::to_string(id_to_token_.size()) + ")");
    }
    const std::string& tok = id_to_token_[id];
    // As the ByteLevel decoder: map every character back to its byte, or, if one has no byte,
    // take the token's own UTF-8 (added tokens such as "<|im_end|>").
    std::string mapped;
    bool all = true;
    for (char32_t c : utf8_to_u32(tok)) {
      const auto it = char_to_byte_.find(c);
      if (it == char_to_byte_.end()) {
        all = false;
        break;
      }
      mapped.push_back(static_cast<char>(it->second));
    }
    bytes += all ? mapped : tok;
  }
  return utf8_lossy(bytes);
}

}  // namespace lomo::text
