// Training and scoring data from JSONL, one object a line, in one of four forms (design §5):
//   {"input_ids": [...]}                  used as is, loss on every token after the first
//   {"text": "..."}                       tokenized as a document (BOS when the tokenizer adds
//                                         one), loss on every token after the first
//   {"prompt": "...", "completion": "..."} BOS? + prompt + completion + EOS, loss on the
//                                         completion and EOS only
//   a task's official fields (--task)     prompt + the labelled answer, as prompt/completion
//   {"messages": [{"role", "content"}...]} a conversation rendered with the model's chat
//                                         template, loss on the assistant turns (data/chat.h)
// A file holds one form; a line of another form is an error naming it. Every line is checked
// before training starts, and errors name file:line and the field.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "data/chat.h"
#include "data/tasks.h"
#include "model/batch.h"
#include "model/config.h"
#include "text/tokenizer.h"

namespace lomo::data {

enum class Format { Ids, Text, PromptCompletion, Task, Messages };
const char* format_name(Format f);

struct DataOptions {
  int64_t seq_len = 1024;                      // longer sequences are cut to this, and counted
  const ModelConfig* config = nullptr;         // vocabulary and context checks
  const text::Tokenizer* tokenizer = nullptr;  // needed by every form but input_ids
  std::optional<Task> task;                    // read the task's fields instead
  // {"messages"} data: the chat template of `model_path` (read on the first such line, so that
  // other data never needs one), or the file `chat_template_file` (--chat-template) instead.
  std::string model_path{};
  std::string chat_template_file{};
  ChatLoss chat_loss = ChatLoss::AssistantOnly;  // --train-on-all-turns: AllTurns
};

struct Dataset {
  Format format = Format::Ids;
  std::vector<Sequence> examples;
  int64_t truncated = 0;  // examples cut to seq_len
  int64_t dropped = 0;    // examples whose loss tokens were all cut away
};

Dataset load_dataset(const std::string& path, const DataOptions& opts);

// The examples of a multiple-choice file (for evaluation).
std::vector<ChoiceExample> load_choice_examples(const std::string& path, Task task);

// BOS? + prompt + completion + EOS with the loss on completion + EOS. Throws lomo::Error
// (prefixed by `where`) if the tokenizer has no EOS token.
Sequence prompt_completion(const text::Tokenizer& tok, const std::string& prompt,
                           const std::string& completion, const std::string& where);

}  // namespace lomo::data
