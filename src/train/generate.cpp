#include "train/generate.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>

#include "core/error.h"
#include "text/text_stream.h"

namespace lomo {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void add_id(std::vector<int32_t>& ids, int64_t id) {
  if (id >= 0 && std::find(ids.begin(), ids.end(), id) == ids.end())
    ids.push_back(static_cast<int32_t>(id));
}

}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Eos:
      return "eos";
    case FinishReason::StopString:
      return "stop";
    case FinishReason::Length:
      return "length";
    case FinishReason::Context:
      return "context";
  }
  return "?";
}

std::vector<int32_t> encode_prompt(const text::Tokenizer& tok, std::string_view prompt) {
  return tok.encode_document(prompt);
}

std::vector<int32_t> end_of_sequence_ids(const std::string& model_path, const ModelConfig& config,
                                         const text::Tokenizer* tok) {
  std::vector<int32_t> ids;
  if (tok) add_id(ids, tok->eos_id);
  add_id(ids, config.eos_token_id);
  namespace fs = std::filesystem;
  const fs::path gc = fs::path(model_path) / "generation_config.json";
  std::error_code ec;
  if (fs::is_directory(model_path, ec) && fs::exists(gc, ec)) {
    std::ifstream in(gc);
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) throw Error(gc.string() + ": not valid JSON");
    const auto e = j.find("eos_token_id");
    if (e != j.end()) {
      if (e->is_number_integer()) add_id(ids, e->get<int64_t>());
      if (e->is_array()) {
        for (const auto& x : *e) {
          if (x.is_number_integer()) add_id(ids, x.get<int64_t>());
        }
      }
    }
  }
  return ids;
}

Generator::Generator(CachedDecoder& decoder, const text::Tokenizer* tok)
    : decoder_(decoder), tok_(tok) {}

Generation Generator::generate(const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                               const std::function<void(std::string_view)>& on_text) {
  if (prompt.empty()) throw Error("the prompt has no tokens");
  if (!opts.stop_strings.empty() && tok_ == nullptr)
    throw Error("stop strings need the model's tokenizer, and this model has none");
  Generation g;
  g.prompt_tokens = static_cast<int64_t>(prompt.size());
  const auto total = static_cast<int64_t>(prompt.size()) + opts.max_new_tokens;
  decoder_.reserve(std::min(total, decoder_.context()));

  // Keep the cached positions the new prompt repeats; at least its last token is fed again, for
  // the logits that predict the first new token.
  const std::vector<int32_t>& cached = decoder_.tokens();
  const auto limit = std::min(cached.size(), prompt.size() - 1);
  size_t same = 0;
  while (same < limit && cached[same] == prompt[same]) ++same;
  decoder_.truncate(static_cast<int64_t>(same));
  g.reused_tokens = static_cast<int64_t>(same);

  auto t0 = std::chrono::steady_clock::now();
  const std::vector<float>& logits =
      decoder_.append(std::span<const int32_t>(prompt).subspan(same));
  g.prefill_seconds = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();

  std::unique_ptr<text::TextStream> stream;
  if (tok_) stream = std::make_unique<text::TextStream>(*tok_, opts.stop_strings);
  auto emit = [&](const std::string& s) {
    if (!s.empty() && on_text) on_text(s);
  };
  std::vector<float> work;
  g.reason = FinishReason::Length;
  for (int64_t i = 0; i < opts.max_new_tokens; ++i) {
    work = logits;
    const int32_t id =
        sample_token(work, decoder_.tokens(), opts.sampling, opts.stream, static_cast<uint64_t>(i));
    g.tokens.push_back(id);
    if (std::find(opts.stop_ids.begin(), opts.stop_ids.end(), id) != opts.stop_ids.end()) {
      g.reason = FinishReason::Eos;
      break;
    }
    if (stream) {
      emit(stream->push(id));
      if (stream->stopped()) {
        g.reason = FinishReason::StopString;
        break;
      }
    }
    if (i + 1 == opts.max_new_tokens) break;
    if (decoder_.length() == decoder_.capacity()) {
      g.reason = FinishReason::Context;
      break;
    }
    decoder_.append(std::span<const int32_t>(&g.tokens.back(), 1));
  }
  if (stream) {
    emit(stream->finish());
    g.text = stream->text();
  }
  g.decode_seconds = seconds_since(t0);
  return g;
}

}  // namespace lomo
