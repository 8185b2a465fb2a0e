// Conversations as training data: {"messages": [{"role": "system"|"user"|"assistant",
// "content": "..."}, ...]} (the format of TRL, torchtune and OpenAI's fine-tuning files).
//
// The conversation is rendered with the model's chat template (text/chat_template.h) and
// tokenized whole, as transformers' apply_chat_template(tokenize=True) does, so the ids are the
// ones the model sees at inference.
//
// Loss (ChatLoss::AssistantOnly, the default): on the tokens of each assistant turn, meaning
// exactly the text the template adds for that message — render(messages[:i+1]) minus
// render(messages[:i], add_generation_prompt=True) — less the whitespace the template writes
// after the turn's end marker. So the assistant header ("<|im_start|>assistant\n",
// "<|start_header_id|>assistant<|end_header_id|>\n\n") is the prompt, and the content plus its
// end-of-turn token (<|im_end|>, <|eot_id|>, </s>) carry loss, as TRL's assistant-only loss
// does; system and user turns never do. A token that straddles a boundary carries loss when any
// of its characters is the assistant's. ChatLoss::AllTurns: loss on every token, as {"text"}.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/batch.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace lomo::data {

enum class ChatLoss { AssistantOnly, AllTurns };

// The "messages" of a JSONL line; throws lomo::Error naming `where` and the message index when
// a message is not {"role": "system"|"user"|"assistant", "content": "<string>"}.
std::vector<text::ChatMessage> parse_messages(const nlohmann::json& line, const std::string& where);

// Renders, tokenizes and masks one conversation. Throws lomo::Error (prefixed by `where`) when
// the template refuses the conversation, or, for AssistantOnly, when there is no assistant
// message or the template renders a shorter conversation differently (so that the assistant
// turns cannot be located).
Sequence chat_sequence(const text::Tokenizer& tok, const text::ChatTemplate& tpl,
                       const std::vector<text::ChatMessage>& messages, ChatLoss loss,
                       const std::string& where);

}  // namespace lomo::data
