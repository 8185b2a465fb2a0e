#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/preamble.h"
#include "core/error.h"
#include "text/tokenizer.h"

namespace lomo::cli {

int cmd_tokenize(int argc, char** argv) {
  Args args("tokenize",
            "lomo tokenize --model DIR (--text STR | --file F) [--decode] [--special on|off]",
            "Prints the token ids of the text as a JSON array (one per line of --file), or with\n"
            "--decode reads JSON arrays of ids and prints the text as a JSON string, so that\n"
            "spaces and newlines are visible.",
            {model_flag("model folder (tokenizer.json / tokenizer.model) or .gguf file"),
             {"text", "STR", "the text (or, with --decode, a JSON array of ids)", ""},
             {"file", "F", "one input per line", ""},
             {"decode", "", "ids to text", ""},
             {"special", "on|off", "add BOS as the model's tokenizer does for a document", "on"}});
  args.parse(argc, argv, 2);
  if (args.help_requested()) {
    std::fputs(args.help().c_str(), stdout);
    return 0;
  }
  const std::string model_path = model_preamble(args);
  const bool decode = args.given("decode");
  if (args.given("text") == args.given("file"))
    throw Error("give exactly one of --text and --file");
  const auto tok = text::load_tokenizer(model_path);
  if (!tok) throw Error(model_path + ": no tokenizer.json or tokenizer.model in the folder");
  const bool special = args.on_off("special");
  std::vector<std::string> inputs;
  if (args.given("text")) {
    inputs.push_back(args.str("text"));
  } else {
    std::ifstream in(args.str("file"));
    if (!in) throw Error(args.str("file") + ": cannot open");
    for (std::string line; std::getline(in, line);) inputs.push_back(line);
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (decode) {
      std::vector<int32_t> ids;
      try {
        ids = nlohmann::json::parse(inputs[i]).get<std::vector<int32_t>>();
      } catch (const nlohmann::json::exception&) {
        throw Error("input " + std::to_string(i + 1) +
                    ": --decode expects a JSON array of token ids");
      }
      std::printf("%s\n", nlohmann::json(tok->decode(ids)).dump().c_str());
    } else {
      const auto ids = special ? tok->encode_document(inputs[i]) : tok->encode(inputs[i]);
      std::printf("%s\n", nlohmann::json(ids).dump().c_str());
    }
  }
  return 0;
}

}  // namespace lomo::cli
