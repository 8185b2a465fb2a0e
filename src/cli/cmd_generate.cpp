#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/preamble.h"
#include "core/error.h"
#include "core/progress.h"
#include "model/decoder.h"
#include "model/loader.h"
#include "model/lora_files.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "train/generate.h"
#include "train/memory_plan.h"

namespace lomo::cli {

namespace {

namespace fs = std::filesystem;

// The prompts of --prompts FILE.jsonl: one {"prompt": "..."} a line (blank lines skipped), all
// checked before any weight is read.
std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open the prompts file");
  std::vector<std::string> prompts;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(n);
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) throw Error(where + ": not valid JSON");
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string()) {
      throw Error(where +
                  ": expected an object with a string \"prompt\", e.g. {\"prompt\": \"Hi\"}");
    }
    std::string p = j["prompt"].get<std::string>();
    if (p.empty()) throw Error(where + ": the prompt is empty");
    prompts.push_back(std::move(p));
  }
  if (prompts.empty()) throw Error(path + ": no prompts (one {\"prompt\": ...} object a line)");
  return prompts;
}

// Where the JSONL of --out goes until it is complete: written as the prompts finish, renamed into
// place at the end, so a failed run never leaves a torn file under the name asked for.
std::string staging_name(const std::string& out) {
  return out + ".partial";
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  Args args(
      "generate",
      "lomo generate --model PATH (--prompt TEXT | --prompts FILE.jsonl [--out FILE.jsonl] | "
      "--chat) [flags]",
      "Continues a prompt with the model, printing the text as it is generated. The prompt is\n"
      "read in one forward pass, then each new token attends to the cached keys and values of\n"
      "the tokens before it. --temperature 0 picks the most likely token every time (greedy);\n"
      "otherwise tokens are sampled after --repetition-penalty, --temperature, --top-k, --top-p\n"
      "and --min-p (in that order, as transformers), from a counter-based random generator: the\n"
      "same --seed gives the same text. Generation ends at the model's end-of-sequence token, at\n"
      "a --stop string (cut from the text), after --max-new-tokens, or at the model's context.\n"
      "\n"
      "With --prompts, every line {\"prompt\": TEXT} of the file is continued in turn and one "
      "line\n"
      "{\"prompt\", \"completion\", \"tokens\": generated count, \"finish_reason\": "
      "eos|stop|length|\n"
      "context} is written per prompt to --out (or stdout), for scripted evaluation; prompt i\n"
      "samples from random stream i, so a run repeats whatever the order of other work.\n"
      "\n"
      "--chat talks to the model through its chat template (the model's own, or\n"
      "--chat-template FILE): with --prompt or --prompts each prompt is one user turn (after\n"
      "--system, if given); alone, it is an interactive conversation: each line typed on stdin\n"
      "is a user turn, the reply streams back, the whole conversation is the context of the next\n"
      "turn (its cached prefix is reused); an empty line or end of input ends it.",
      {model_flag("Hugging Face model folder or .gguf file"),
       {"prompt", "TEXT", "the text to continue (encoded as a document: BOS if the model uses one)",
        ""},
       {"prompts", "FILE", "JSONL of {\"prompt\": TEXT} lines: batch mode", ""},
       {"out", "FILE", "with --prompts: write the JSONL results here instead of stdout", ""},
       {"max-new-tokens", "N", "most tokens to generate per prompt", "256"},
       {"temperature", "F", "0: greedy; otherwise divides the logits before sampling", "0.7"},
       {"top-k", "N", "sample among the N most likely tokens only (0: off)", "0"},
       {"top-p", "F", "sample among the most likely tokens whose mass reaches F (1: off)", "1"},
       {"min-p", "F", "drop tokens less likely than F times the most likely (0: off)", "0"},
       {"repetition-penalty", "F",
        "divide positive (multiply negative) logits of tokens already in the text (1: off)", "1"},
       {"seed", "N", "random seed of the sampling", "0"},
       {"stop", "STRING", "end when the text contains STRING (cut before it); repeatable", "",
        false, true},
       {"chat", "", "render prompts as user turns with the chat template; alone: interactive",
        ""},
       {"system", "TEXT", "with --chat: a system message before the first user turn", ""},
       {"chat-template", "FILE",
        "with --chat: a Jinja chat template (or a tokenizer_config.json holding one) instead of "
        "the model's",
        ""},
       {"ignore-eos", "", "keep generating past the end-of-sequence token (benchmarks)", ""},
       {"lora", "DIR",
        "apply the LoRA adapters of this PEFT folder (as lomo train writes them), merged into "
        "the weights at load",
        ""},
       {"dtype", "fp32|bf16|fp16", "storage of the 2-D weights (compute is fp32)", "fp32"},
       {"bf16-gemm", "on|off", "with --dtype bf16: products in bf16 (weights as stored)", "on"},
       {"stats", "", "print token counts and speeds (prompt and decode tokens/s) to stderr", ""},
       threads_flag()});
  args.parse(argc, argv, 2);
  if (args.help_requested()) {
    std::fputs(args.help().c_str(), stdout);
    return 0;
  }

  // Everything a user can get wrong is refused here, before the weights are read.
  const bool chat = args.given("chat");
  if (args.given("prompt") && args.given("prompts")) {
    throw Error("give one of --prompt TEXT and --prompts FILE.jsonl, not both");
  }
  if (!chat && !args.given("prompt") && !args.given("prompts")) {
    throw Error("give --prompt TEXT, --prompts FILE.jsonl, or --chat for a conversation");
  }
  for (const char* f : {"system", "chat-template"}) {
    if (args.given(f) && !chat) {
      throw Error(std::string("--") + f + " has no effect here: it applies to --chat");
    }
  }
  const bool interactive = chat && !args.given("prompt") && !args.given("prompts");
  if (args.given("out") && !args.given("prompts")) {
    throw Error("--out writes the results of --prompts; with --prompt the text goes to stdout");
  }
  std::vector<std::string> prompts;
  if (args.given("prompt")) {
    if (args.str("prompt").empty()) throw Error("--prompt is empty: give the text to continue");
    prompts.push_back(args.str("prompt"));
  }
  GenerateOptions gen;
  gen.max_new_tokens = args.integer("max-new-tokens", 1, int64_t{1} << 24);
  SamplingOptions& s = gen.sampling;
  s.temperature = args.number("temperature", 0.0, 1e6);
  s.top_k = args.integer("top-k", 0, int64_t{1} << 31);
  s.top_p = args.number("top-p", 0.0, 1.0);
  if (s.top_p <= 0.0) throw Error("--top-p: must be above 0 (1 turns it off)");
  s.min_p = args.number("min-p", 0.0, 1.0);
  s.repetition_penalty = args.number("repetition-penalty", 0.0, 1e6);
  if (s.repetition_penalty <= 0.0) throw Error("--repetition-penalty: must be above 0 (1: off)");
  s.seed = static_cast<uint64_t>(args.integer("seed", 0, INT64_MAX));
  gen.stop_strings = args.all("stop");
  for (const auto& st : gen.stop_strings) {
    if (st.empty()) throw Error("--stop: an empty stop string would end every generation at once");
  }
  const StorageDtype dtype = parse_storage_dtype(args.str("dtype"));
  if (args.given("bf16-gemm") && dtype != StorageDtype::BF16) {
    throw Error("--bf16-gemm acts on bf16 weights only; use it with --dtype bf16");
  }
  const bool bf16_gemm = dtype == StorageDtype::BF16 && args.on_off("bf16-gemm");
  const bool stats = args.given("stats");
  if (args.given("prompts")) prompts = read_prompts(args.str("prompts"));
  std::FILE* out = stdout;
  std::string out_path;
  if (args.given("out")) {
    out_path = args.str("out");
    if (out_path.empty()) throw Error("--out: empty file name");
    out = std::fopen(staging_name(out_path).c_str(), "wb");
    if (out == nullptr) throw Error(out_path + ": cannot write here (does its folder exist?)");
  }
  // Until the results are complete, an error closes and removes the staging file.
  struct Staging {
    std::FILE* f;
    std::string path;
    ~Staging() {
      if (f == stdout) return;
      std::fclose(f);
      std::remove(path.c_str());
    }
  } staging{out, out_path.empty() ? "" : staging_name(out_path)};

  const std::string model_path = model_preamble(args);
  const ModelConfig config = load_model_config(model_path);  // the header only
  // The adapters (settings, tensors, shapes), read before any weight of the model.
  MemoryTracker tracker;
  std::optional<LoraAdapters> lora;
  if (args.given("lora")) lora.emplace(read_peft_adapter(args.str("lora"), config, tracker));
  const auto tok = text::load_tokenizer(model_path);
  if (!tok) {
    throw Error(model_path +
                ": no tokenizer (tokenizer.json / tokenizer.model, or GGUF "
                "tokenizer metadata): generate needs one to read the prompt");
  }
  // Positions the model attends over (CachedDecoder::context()): known from the header.
  const int64_t context = config.sliding_window > 0
                              ? std::min(config.max_position, config.sliding_window)
                              : config.max_position;
  // The chat template, before any weight is read: the model's own, or --chat-template FILE.
  std::optional<text::ChatTemplate> tpl;
  if (chat) {
    if (args.given("chat-template")) {
      const auto [bos, eos] = text::model_special_tokens(model_path);
      tpl = text::chat_template_from_file(args.str("chat-template"), bos, eos);
    } else {
      tpl = text::load_chat_template(model_path);
      if (!tpl) {
        throw Error(model_path +
                    ": the model has no chat template; give one with --chat-template FILE");
      }
    }
  }
  std::vector<text::ChatMessage> opening;  // what every conversation starts with
  if (args.given("system")) opening.push_back({"system", args.str("system")});
  // A conversation's ids: rendered with the generation prompt, encoded without an added BOS
  // (the template writes it), as transformers' apply_chat_template does.
  auto chat_ids = [&](const std::vector<text::ChatMessage>& messages) {
    return tok->encode(tpl->render(messages, text::GenerationPrompt::On));
  };
  std::vector<std::vector<int32_t>> prompt_ids;
  int64_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (chat) {
      std::vector<text::ChatMessage> m = opening;
      m.push_back({"user", prompts[i]});
      prompt_ids.push_back(chat_ids(m));
    } else {
      prompt_ids.push_back(encode_prompt(*tok, prompts[i]));
    }
    const auto n = static_cast<int64_t>(prompt_ids.back().size());
    if (n == 0) throw Error("prompt " + std::to_string(i + 1) + " encodes to no tokens");
    if (n >= context) {
      throw Error("prompt " + std::to_string(i + 1) + " is " + std::to_string(n) +
                  " tokens; the model's context is " + std::to_string(context) +
                  ", which leaves no room to generate");
    }
    longest = std::max(longest, n);
  }
  if (!args.given("ignore-eos")) gen.stop_ids = end_of_sequence_ids(model_path, config, tok.get());

  const std::unique_ptr<Backend> backend = backend_from_args(args);
  LiveLine line(stderr, is_live_terminal(stderr));
  Progress loading(line, "load", "parameters");
  Model model = load_model(model_path, tracker, dtype, loading.fn());
  if (lora) lora->merge_into(model.params);
  loading.finish();
  DecoderOptions dopts;
  dopts.bf16_gemm = bf16_gemm;
  // A conversation grows turn by turn: its cache holds the whole context from the start.
  dopts.capacity = interactive ? context : std::min(longest + gen.max_new_tokens, context);
  CachedDecoder decoder(model.config, model.params, tracker, *backend, dopts);
  Generator generator(decoder, tok.get());
  if (stats) {
    std::fprintf(stderr, "%s, %s weights%s: %zu bytes of weights read per token; KV cache %s\n",
                 backend->name().c_str(), args.str("dtype").c_str(),
                 bf16_gemm ? " (bf16 products)" : "", decoder.weight_bytes_per_token(),
                 format_bytes(KvCache::bytes(model.config, decoder.capacity())).c_str());
  }

  if (interactive) {
    // One user turn per line of stdin; the reply streams to stdout and joins the conversation.
    const bool prompt_user = isatty(fileno(stdin)) != 0;
    std::vector<text::ChatMessage> history = opening;
    std::string user;
    for (size_t turn = 0;; ++turn) {
      if (prompt_user) std::fputs("> ", stderr);
      if (!std::getline(std::cin, user) || user.empty()) break;
      history.push_back({"user", user});
      const std::vector<int32_t> ids = chat_ids(history);
      if (static_cast<int64_t>(ids.size()) >= context) {
        throw Error("the conversation is " + std::to_string(ids.size()) +
                    " tokens; the model's context is " + std::to_string(context) +
                    ": start a new one");
      }
      gen.stream = turn;
      const Generation g = generator.generate(ids, gen, [](std::string_view text) {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
      });
      std::fputc('\n', stdout);
      std::fflush(stdout);
      history.push_back({"assistant", g.text});
      if (stats) {
        std::fprintf(stderr, "[turn %zu] %lld prompt tokens (%lld reused), %zu generated (%s)\n",
                     turn + 1, static_cast<long long>(g.prompt_tokens),
                     static_cast<long long>(g.reused_tokens), g.tokens.size(),
                     finish_reason_name(g.reason));
      }
    }
    return 0;
  }

  const bool batch = args.given("prompts");
  for (size_t i = 0; i < prompts.size(); ++i) {
    gen.stream = i;
    Generation g;
    if (batch) {
      g = generator.generate(prompt_ids[i], gen);
      const nlohmann::json line = {{"prompt", prompts[i]},
                                   {"completion", g.text},
                                   {"tokens", g.tokens.size()},
                                   {"finish_reason", finish_reason_name(g.reason)}};
      std::fprintf(out, "%s\n", line.dump().c_str());
      std::fflush(out);
    } else {
      g = generator.generate(prompt_ids[i], gen, [](std::string_view text) {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
      });
      std::fputc('\n', stdout);
    }
    if (stats) {
      const auto n = static_cast<int64_t>(g.tokens.size());
      const int64_t fed = g.prompt_tokens - g.reused_tokens;
      // Every generated token but the first is one more forward over the cache.
      std::fprintf(stderr,
                   "[%zu] prompt %lld tokens: %.3f s (%.1f tokens/s); generated %lld tokens "
                   "(%s): %.3f s, decode %.2f tokens/s\n",
                   i + 1, static_cast<long long>(g.prompt_tokens), g.prefill_seconds,
                   fed / std::max(g.prefill_seconds, 1e-9), static_cast<long long>(n),
                   finish_reason_name(g.reason), g.decode_seconds,
                   n > 1 ? static_cast<double>(n - 1) / std::max(g.decode_seconds, 1e-9) : 0.0);
    }
  }
  if (out != stdout) {
    if (std::fflush(out) != 0) throw Error(out_path + ": write failed (disk full?)");
    std::fclose(out);
    staging.f = stdout;  // closed and complete: the guard has nothing left to undo
    std::error_code ec;
    fs::rename(staging_name(out_path), out_path, ec);
    if (ec) throw Error(out_path + ": cannot move the results into place: " + ec.message());
  }
  return 0;
}

}  // namespace lomo::cli
