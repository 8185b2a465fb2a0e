// Fuzz target: JSONL training and evaluation data (data/dataset.h, data/tasks.h). The input is
// the data file; it is read as plain data (input_ids, text, prompt/completion), as training data
// of every task, and as evaluation examples of every task, with the tokenizer and config of
// tests/fixtures/eval_model (a SmolLM-style vocabulary) and a context of 64 tokens, short enough
// to be exceeded.
#include <memory>

#include "core/error.h"
#include "data/dataset.h"
#include "data/tasks.h"
#include "fuzz_util.h"
#include "model/config.h"
#include "text/tokenizer.h"

namespace {

struct Fixed {
  std::unique_ptr<lomo::text::Tokenizer> tok;
  lomo::ModelConfig config;
};

const Fixed& fixed() {
  static const Fixed f = [] {
    Fixed x;
    const std::string dir = LOMO_SOURCE_DIR "/tests/fixtures/eval_model";
    x.tok = lomo::text::load_tokenizer(dir);
    if (!x.tok || x.tok->eos_id < 0) std::abort();
    x.config = lomo::load_config(dir + "/config.json");
    x.config.max_position = 64;
    return x;
  }();
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* input, size_t size) {
  using namespace lomo;
  using data::Task;
  const Fixed& fx = fixed();
  const std::string path = fuzz::scratch().write("data.jsonl", input, size);
  data::DataOptions opts;
  opts.seq_len = 16;
  opts.config = &fx.config;
  opts.tokenizer = fx.tok.get();
  try {
    (void)data::load_dataset(path, opts);
  } catch (const Error&) {
  }
  for (Task t :
       {Task::BoolQ, Task::Rte, Task::Wic, Task::Wsc, Task::MultiRc, Task::Copa, Task::Choice}) {
    opts.task = t;
    try {
      (void)data::load_dataset(path, opts);
    } catch (const Error&) {
    }
    try {
      (void)data::load_choice_examples(path, t);
    } catch (const Error&) {
    }
  }
  return 0;
}
