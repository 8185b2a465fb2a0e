#include "data/tasks.h"

#include "core/error.h"

namespace lomo::data {

Task parse_task(const std::string& s) {
  if (s == "boolq") return Task::BoolQ;
  if (s == "rte") return Task::Rte;
  if (s == "wic") return Task::Wic;
  if (s == "wsc") return Task::Wsc;
  if (s == "multirc") return Task::MultiRc;
  if (s == "copa") return Task::Copa;
  if (s == "choice") return Task::Choice;
  throw Error("--task: unknown task \"" + s + "\" (boolq, rte, wic, wsc, multirc, copa, choice)");
}

const char* task_name(Task t) {
  switch (t) {
    case Task::BoolQ:
      return "boolq";
    case Task::Rte:
      return "rte";
    case Task::Wic:
      return "wic";
    case Task::Wsc:
      return "wsc";
    case Task::MultiRc:
      return "multirc";
    case Task::Copa:
      return "copa";
    case Task::Choice:
      return "choice";
  }
  return "?";
}

namespace {

class Fields {
 public:
  Fields(const nlohmann::json& j, std::string where, Task task)
      : j_(j), where_(std::move(where)), task_(task) {}

  [[noreturn]] void fail(const std::string& field, const std::string& why) const {
    throw Error(where_ + ": field \"" + field + "\" " + why + " (" + task_name(task_) + ")");
  }
  const nlohmann::json& get(const nlohmann::json& obj, const std::string& field,
                            const std::string& path) const {
    if (!obj.is_object() || !obj.contains(field)) fail(path, "is missing");
    return obj[field];
  }
  std::string str(const nlohmann::json& obj, const std::string& field,
                  const std::string& path) const {
    const auto& v = get(obj, field, path);
    if (!v.is_string()) fail(path, "must be a string, got " + v.dump().substr(0, 60));
    return v.get<std::string>();
  }
  std::string str(const std::string& field) const { return str(j_, field, field); }

  // A yes/no label: true/false (or 1/0). Absent or null: −1 (unlabelled).
  int yes_no(const nlohmann::json& obj, const std::string& path) const {
    if (!obj.contains("label") || obj["label"].is_null()) return -1;
    const auto& v = obj["label"];
    if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
    if (v.is_number_integer() && (v.get<int64_t>() == 0 || v.get<int64_t>() == 1)) {
      return static_cast<int>(v.get<int64_t>());
    }
    if (v.is_number_integer() && v.get<int64_t>() == -1) return -1;
    fail(path, "must be true/false or 0/1, got " + v.dump().substr(0, 60));
  }
  int index_label(size_t n) const {
    if (!j_.contains("label") || j_["label"].is_null()) return -1;
    const auto& v = j_["label"];
    if (!v.is_number_integer()) fail("label", "must be an integer, got " + v.dump().substr(0, 60));
    const int64_t l = v.get<int64_t>();
    if (l == -1) return -1;
    if (l < 0 || static_cast<size_t>(l) >= n) {
      fail("label", "= " + std::to_string(l) + " is out of range [0, " + std::to_string(n) + ")");
    }
    return static_cast<int>(l);
  }
  const nlohmann::json& root() const { return j_; }

 private:
  const nlohmann::json& j_;
  std::string where_;
  Task task_;
};

}  // namespace

std::vector<ChoiceExample> parse_task_line(Task task, const nlohmann::json& j,
                                           const std::string& where) {
  if (!j.is_object()) throw Error(where + ": expected a JSON object");
  const Fields f(j, where, task);
  const std::vector<std::string> no_yes = {"No", "Yes"};
  switch (task) {
    case Task::BoolQ:
      return {{f.str("passage") + " " + f.str("question") + "\nAnswer: ", no_yes,
               f.yes_no(j, "label")}};
    case Task::Rte: {
      int label = -1;
      if (j.contains("label") && !j["label"].is_null()) {
        const auto& v = j["label"];
        if (v == "entailment" || v == 0) {
          label = 0;
        } else if (v == "not_entailment" || v == 1) {
          label = 1;
        } else {
          f.fail("label",
                 "must be \"entailment\" or \"not_entailment\", got " + v.dump().substr(0, 60));
        }
      }
      return {{f.str("premise") + "\nDoes this mean that \"" + f.str("hypothesis") +
                   "\" is true? Yes or No?\nAnswer: ",
               {"Yes", "No"},
               label}};
    }
    case Task::Wic:
      return {{"Does the word \"" + f.str("word") +
                   "\" have the same meaning in these two sentences? Yes, No?\n" +
                   f.str("sentence1") + "\n" + f.str("sentence2") + "\nAnswer: ",
               no_yes, f.yes_no(j, "label")}};
    case Task::Wsc: {
      const auto& target = f.get(j, "target", "target");
      return {{f.str("text") + "\nIn the previous sentence, does the pronoun \"" +
                   f.str(target, "span2_text", "target.span2_text") + "\" refer to \"" +
                   f.str(target, "span1_text", "target.span1_text") + "\"? Yes or No?\nAnswer: ",
               no_yes, f.yes_no(j, "label")}};
    }
    case Task::MultiRc: {
      const auto& passage = f.get(j, "passage", "passage");
      const std::string paragraph = f.str(passage, "text", "passage.text");
      const auto& questions = f.get(passage, "questions", "passage.questions");
      if (!questions.is_array() || questions.empty())
        f.fail("passage.questions", "must be a non-empty list");
      std::vector<ChoiceExample> out;
      for (size_t qi = 0; qi < questions.size(); ++qi) {
        const std::string qp = "passage.questions[" + std::to_string(qi) + "]";
        const std::string question = f.str(questions[qi], "question", qp + ".question");
        const auto& answers = f.get(questions[qi], "answers", qp + ".answers");
        if (!answers.is_array() || answers.empty())
          f.fail(qp + ".answers", "must be a non-empty list");
        for (size_t ai = 0; ai < answers.size(); ++ai) {
          const std::string ap = qp + ".answers[" + std::to_string(ai) + "]";
          out.push_back({paragraph + "\nQuestion: " + question + "\nI found this answer \"" +
                             f.str(answers[ai], "text", ap + ".text") +
                             "\". Is that correct? Yes or No?\nAnswer: ",
                         no_yes, f.yes_no(answers[ai], ap + ".label")});
        }
      }
      return out;
    }
    case Task::Copa: {
      std::string premise = f.str("premise");
      if (!premise.empty() && premise.back() == '.') premise.pop_back();
      const std::string q = f.str("question");
      if (q != "cause" && q != "effect")
        f.fail("question", "must be \"cause\" or \"effect\", got \"" + q + "\"");
      ChoiceExample e{premise + (q == "effect" ? " so " : " because "),
                      {f.str("choice1"), f.str("choice2")},
                      -1};
      e.label = f.index_label(2);
      return {e};
    }
    case Task::Choice: {
      const auto& choices = f.get(j, "choices", "choices");
      if (!choices.is_array() || choices.empty())
        f.fail("choices", "must be a non-empty list of strings");
      ChoiceExample e{f.str("prompt"), {}, -1};
      for (size_t i = 0; i < choices.size(); ++i) {
        if (!choices[i].is_string())
          f.fail("choices[" + std::to_string(i) + "]", "must be a string");
        e.candidates.push_back(choices[i].get<std::string>());
      }
      e.label = f.index_label(e.candidates.size());
      return {e};
    }
  }
  return {};
}

}  // namespace lomo::data
