// Multiple-choice tasks: the six SuperGLUE tasks of the LOMO paper, read from their official
// JSONL fields, and the generic {"prompt", "choices", "label"} form. Each line becomes one or
// more ChoiceExamples (MultiRC: one per answer option) with the paper's prompt and candidates
// (design §5):
//   boolq    "{passage} {question}\nAnswer: "                                  No / Yes
//   rte      "{premise}\nDoes this mean that \"{hypothesis}\" is true? Yes or No?\nAnswer: "
//                                                                              Yes / No (0 =
//                                                                              entailment)
//   wic      "Does the word \"{word}\" have the same meaning in these two sentences? Yes, No?\n"
//            "{sentence1}\n{sentence2}\nAnswer: "                             No / Yes
//   wsc      "{text}\nIn the previous sentence, does the pronoun \"{span2_text}\" refer to
//            \"{span1_text}\"? Yes or No?\nAnswer: "                          No / Yes
//   multirc  "{paragraph}\nQuestion: {question}\nI found this answer \"{answer}\". Is that
//            correct? Yes or No?\nAnswer: "                                    No / Yes
//   copa     "{premise without its final period} so " (effect) / " because " (cause)
//                                                                              choice1 / choice2
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lomo::data {

enum class Task { BoolQ, Rte, Wic, Wsc, MultiRc, Copa, Choice };

Task parse_task(const std::string& name);  // throws lomo::Error listing the names
const char* task_name(Task t);

struct ChoiceExample {
  std::string prompt;
  std::vector<std::string> candidates;
  int label = -1;  // index into candidates; −1 when the line has no label (test splits)
};

// One JSONL line of `task`; `where` ("file:line") prefixes every error, which names the field.
std::vector<ChoiceExample> parse_task_line(Task task, const nlohmann::json& j,
                                           const std::string& where);

}  // namespace lomo::data
