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

// tokenizer.json's fields with their types checked: a field of the wrong type is a lomo::Error
// naming the file and the field, never a nlohmann::json exception (and a const operator[] on a
// missing key, undefined behaviour, is never reached).
class Fields {
 public:
  explicit Fields(const std::string& source) : source_(source) {}

  [[noreturn]] void fail(const std::string& field, const std::string& why) const {
    throw Error(source_ + ": " + field + " " + why);
  }
  // "parent.key", or "key" at the top level.
  static std::string name(const std::string& path, const char* k) {
    return path.empty() ? std::string(k) : path + "." + k;
  }
  // The field, or nullptr when it is absent or null (or `o` is not an object).
  static const nlohmann::json* get(const nlohmann::json& o, const char* k) {
    if (!o.is_object()) return nullptr;
    const auto it = o.find(k);
    return it == o.end() || it->is_null() ? nullptr : &*it;
  }
  std::string str(const nlohmann::json& o, const char* k, const std::string& path,
                  const std::string& def = "") const {
    const nlohmann::json* v = get(o, k);
    if (v == nullptr) return def;
    if (!v->is_string()) fail(name(path, k), "must be a string, got " + v->dump().substr(0, 60));
    return v->get<std::string>();
  }
  bool boolean(const nlohmann::json& o, const char* k, const std::string& path, bool def) const {
    const nlohmann::json* v = get(o, k);
    if (v == nullptr) return def;
    if (!v->is_boolean())
      fail(name(path, k), "must be true or false, got " + v->dump().substr(0, 60));
    return v->get<bool>();
  }
  const nlohmann::json& array(const nlohmann::json& o, const char* k,
                              const std::string& path) const {
    static const nlohmann::json kEmpty = nlohmann::json::array();
    const nlohmann::json* v = get(o, k);
    if (v == nullptr) return kEmpty;
    if (!v->is_array()) fail(name(path, k), "must be a list");
    return *v;
  }
  // A token id: an integer in [0, limit).
  int32_t id(const nlohmann::json& v, const std::string& path, int64_t limit) const {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= limit ||
        (v.is_number_unsigned() && v.get<uint64_t>() >= static_cast<uint64_t>(limit))) {
      fail(path, "= " + v.dump().substr(0, 60) + " is not a token id: ids lie in [0, " +
                     std::to_string(limit) + "), below the number of tokens the file lists");
    }
    return static_cast<int32_t>(v.get<int64_t>());
  }

 private:
  const std::string& source_;
};

bool is_byte_level(const Fields& f, const nlohmann::json& p, const std::string& path,
                   bool use_regex) {
  return p.is_object() && f.str(p, "type", path) == "ByteLevel" &&
         f.boolean(p, "use_regex", path, true) == use_regex &&
         !f.boolean(p, "add_prefix_space", path, false);
}

PreTokenizer parse_pre_tokenizer(const Fields& f, const nlohmann::json& p,
                                 const std::string& source) {
  auto fail = [&]() -> PreTokenizer {
    throw Error(source + ": pre_tokenizer " + p.dump().substr(0, 300) +
                " is not supported (byte-level BPE with the gpt2, llama-bpe, qwen2 or smollm "
                "pre-tokenizer)");
  };
  const std::string path = "pre_tokenizer";
  if (is_byte_level(f, p, path, true)) return PreTokenizer::Gpt2;
  if (!p.is_object() || f.str(p, "type", path) != "Sequence") return fail();
  const auto& seq = f.array(p, "pretokenizers", path);
  if (seq.size() != 2 || !seq[0].is_object() || !seq[1].is_object()) return fail();
  const auto& a = seq[0];
  const auto& b = seq[1];
  const std::string pa = path + ".pretokenizers[0]", pb = path + ".pretokenizers[1]";
  if (f.str(a, "type", pa) == "Digits" && f.boolean(a, "individual_digits", pa, false) &&
      is_byte_level(f, b, pb, true)) {
    return PreTokenizer::SmolLM;
  }
  if (f.str(a, "type", pa) == "Split" && f.str(a, "behavior", pa) == "Isolated" &&
      !f.boolean(a, "invert", pa, false) && is_byte_level(f, b, pb, false)) {
    const nlohmann::json* pattern = Fields::get(a, "pattern");
    const std::string re = pattern ? f.str(*pattern, "Regex", pa + ".pattern") : "";
    if (re == kLlama3Pattern) return PreTokenizer::Llama3;
    if (re == kQwen2Pattern) return PreTokenizer::Qwen2;
    if (re == kGpt2Pattern) return PreTokenizer::Gpt2;
  }
  return fail();
}

bool parse_normalizer(const Fields& f, const nlohmann::json* n, const std::string& source) {
  if (n == nullptr) return false;
  const std::string type = f.str(*n, "type", "normalizer");
  if (type == "NFC") return true;
  if (type == "Sequence" && f.array(*n, "normalizers", "normalizer").empty()) return false;
  throw Error(source + ": normalizer " + n->dump().substr(0, 200) +
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
  const Fields f(source);
  const nlohmann::json* mp = Fields::get(j, "model");
  if (mp == nullptr || !mp->is_object()) {
    throw Error(source + ": not a tokenizer.json (no \"model\" object)");
  }
  const auto& m = *mp;
  const std::string type = f.str(m, "type", "model", "BPE");
  if (type != "BPE") throw Error(source + ": model type \"" + type + "\" is not supported (BPE)");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!f.str(m, k, "model").empty()) throw Error(source + ": model." + k + " is not supported");
  }
  BpeParts p;
  const nlohmann::json* pre = Fields::get(j, "pre_tokenizer");
  p.pre = parse_pre_tokenizer(f, pre ? *pre : nlohmann::json(), source);
  p.nfc = parse_normalizer(f, Fields::get(j, "normalizer"), source);
  p.ignore_merges = f.boolean(m, "ignore_merges", "model", false);
  const nlohmann::json* vocab = Fields::get(m, "vocab");
  if (vocab == nullptr || !vocab->is_object()) throw Error(source + ": model.vocab missing");
  const auto& added = f.array(j, "added_tokens", "");
  // Every id names one of the file's tokens, so ids below their count leave the id table no
  // larger than the file implies (a few bytes must not make it allocate gigabytes).
  const int64_t limit = static_cast<int64_t>(vocab->size() + added.size());
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const int32_t id = f.id(*it, "model.vocab[\"" + it.key().substr(0, 60) + "\"]", limit);
    if (static_cast<size_t>(id) >= p.tokens.size()) p.tokens.resize(static_cast<size_t>(id) + 1);
    p.tokens[id] = it.key();
  }
  for (const auto& mg : f.array(m, "merges", "model")) {
    if (mg.is_string()) {
      const std::string s = mg.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) throw Error(source + ": merge \"" + s + "\" is not \"a b\"");
      p.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
      p.merges.emplace_back(mg[0].get<std::string>(), mg[1].get<std::string>());
    } else {
      throw Error(source + ": malformed merge " + mg.dump().substr(0, 60));
    }
  }
  for (size_t i = 0; i < added.size(); ++i) {
    const auto& t = added[i];
    const std::string path = "added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object() || !Fields::get(t, "content") || !Fields::get(t, "id")) {
      f.fail(path, "needs \"content\" and \"id\"");
    }
    AddedToken a;
    a.content = f.str(t, "content", path);
    a.id = f.id(t["id"], path + ".id", limit);
    a.special = f.boolean(t, "special", path, false);
    a.lstrip = f.boolean(t, "lstrip", path, false);
    a.rstrip = f.boolean(t, "rstrip", path, false);
    if (!a.content.empty()) p.added.push_back(a);
  }
  // BOS from a TemplateProcessing post-processor whose single template starts with a special token.
  std::vector<const nlohmann::json*> procs;
  if (const nlohmann::json* pp = Fields::get(j, "post_processor"); pp && pp->is_object()) {
    if (f.str(*pp, "type", "post_processor") == "Sequence") {
      for (const auto& x : f.array(*pp, "processors", "post_processor")) procs.push_back(&x);
    } else {
      procs.push_back(pp);
    }
  }
  for (const nlohmann::json* x : procs) {
    const std::string path = "post_processor";
    if (f.str(*x, "type", path) != "TemplateProcessing") continue;
    const auto& single = f.array(*x, "single", path);
    const nlohmann::json* first = single.empty() ? nullptr : Fields::get(single[0], "SpecialToken");
    if (first == nullptr) continue;
    const std::string name = f.str(*first, "id", path + ".single[0].SpecialToken");
    const nlohmann::json* st = Fields::get(*x, "special_tokens");
    const nlohmann::json* entry = st ? Fields::get(*st, name.c_str()) : nullptr;
    if (entry == nullptr) continue;
    const auto& ids = f.array(*entry, "ids", path + ".special_tokens");
    if (ids.empty()) continue;
    p.bos_id = f.id(ids[0], path + ".special_tokens[\"" + name.substr(0, 60) + "\"].ids[0]", limit);
    p.add_bos = true;
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
  // The BOS token's text: an added token's content, or the vocabulary entry.
  std::string bos;
  for (const auto& a : p.added) {
    if (a.id == p.bos_id) bos = a.content;
  }
  if (bos.empty() && p.bos_id >= 0 && static_cast<size_t>(p.bos_id) < p.tokens.size()) {
    bos = p.tokens[p.bos_id];
  }
  if (p.add_bos && !bos.empty()) {
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
