// Text generation with a KV cache (model/decoder.h): feed the prompt, then pick one token at a
// time (model/sampler.h) until an end-of-sequence token, a stop string, the token limit or the
// end of the cache. The text streams out as it is decoded (text/text_stream.h).
//
// The prompt arrives as token ids, so how a prompt is made is the caller's choice: a plain text
// encoded as a document (encode_prompt), or a conversation rendered by a chat template and then
// encoded. Across calls the decoder keeps the positions of the previous sequence that the new
// prompt repeats (the longest common prefix of ids), so a chat that re-renders the whole
// conversation each turn only computes the new turn's tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"
#include "model/decoder.h"
#include "model/sampler.h"
#include "text/tokenizer.h"

namespace lomo {

struct GenerateOptions {
  int64_t max_new_tokens = 256;
  SamplingOptions sampling;
  std::vector<std::string> stop_strings;  // cut the text before the first; needs a tokenizer
  std::vector<int32_t> stop_ids;          // end-of-sequence tokens (kept in `tokens`, not text)
  uint64_t stream = 0;                    // random stream (e.g. the prompt's number in a batch)
};

enum class FinishReason { Eos, StopString, Length, Context };
// "eos", "stop", "length", "context".
const char* finish_reason_name(FinishReason r);

struct Generation {
  std::vector<int32_t> tokens;  // every generated id, an end-of-sequence one included
  std::string text;  // the completion, cut before a stop string (empty without tokenizer)
  FinishReason reason = FinishReason::Length;
  int64_t prompt_tokens = 0;
  int64_t reused_tokens = 0;   // prompt positions kept from the previous call's cache
  double prefill_seconds = 0;  // feeding the prompt
  double decode_seconds = 0;   // every later token: feeding it, sampling, decoding text
};

// The ids of a plain-text prompt: the tokenizer's encoding of a document (BOS when the tokenizer
// adds one).
std::vector<int32_t> encode_prompt(const text::Tokenizer& tok, std::string_view prompt);

// The ids that end a generation: the tokenizer's EOS, the config's, and generation_config.json's
// eos_token_id (a number or a list) when `model_path` is a folder that has one. Without any, none.
std::vector<int32_t> end_of_sequence_ids(const std::string& model_path, const ModelConfig& config,
                                         const text::Tokenizer* tok);

class Generator {
 public:
  // `decoder` and `tok` (null: ids only, no text, no stop strings) must outlive the generator.
  Generator(CachedDecoder& decoder, const text::Tokenizer* tok);

  // Generates after `prompt` (non-empty). `on_text` receives the text as it becomes printable.
  Generation generate(const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                      const std::function<void(std::string_view)>& on_text = {});

 private:
  CachedDecoder& decoder_;
  const text::Tokenizer* tok_;
};

}  // namespace lomo
