// Shared by the fuzz targets (docs/reliability.md, "Untrusted input").
//
// The rule every target enforces: a reader may reject its input only with lomo::Error. Anything
// else that escapes LLVMFuzzerTestOneInput (a nlohmann::json type error, std::out_of_range, an
// internal LOMO_ASSERT's std::logic_error, std::bad_alloc) aborts the process, and libFuzzer
// keeps the input as a crash; so do AddressSanitizer and UndefinedBehaviorSanitizer reports
// (built with -fno-sanitize-recover=all), leaks, and allocations over -malloc_limit_mb.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace lomo::fuzz {

// A folder private to this process (in /dev/shm when there is one, so writing an input costs no
// disk I/O), removed at exit. The readers take paths, so each input is written to a file here.
class Scratch {
 public:
  Scratch() {
    namespace fs = std::filesystem;
    const fs::path base =
        fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    dir_ = base / ("lomo_fuzz_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Writes bytes to `name` under the folder (sub-folders are created) and returns its path.
  std::string write(const std::string& name, const void* data, size_t size) const {
    const std::filesystem::path p = dir_ / name;
    std::filesystem::create_directories(p.parent_path());
    FILE* f = std::fopen(p.c_str(), "wb");
    if (f == nullptr || (size > 0 && std::fwrite(data, 1, size, f) != size) ||
        std::fclose(f) != 0) {
      std::perror(p.c_str());
      std::abort();  // the harness itself failed: not a finding about the reader
    }
    return p.string();
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

 private:
  std::filesystem::path dir_;
};

inline const Scratch& scratch() {
  static const Scratch s;
  return s;
}

// Text the tokenizer targets encode with whatever tokenizer the input defines: every branch of
// the pre-tokenizers (contractions, letters, digit runs, punctuation, whitespace before text and
// at the end, newlines), non-ASCII letters and numbers, emoji, invalid UTF-8, and special tokens.
inline const char* const kSampleTexts[] = {
    "Hello world! It's 2024, isn't it?  Numbers: 1234567 and 3.14.\n\n  Tabs\tand\r\nCRLF   ",
    "I'LL SAY: you've won't 'd 're 'm 'S",
    "Ünïcödé façade — 東京 ٣٤٥ ½ 🦙🦙 \xF0\x9F\x98",
    "\xFF\xFE invalid \xC0\x80 utf8 \xED\xA0\x80 \xE0\x80",
    "<|im_start|>user\nhi<|im_end|><s> </s> <|endoftext|><|begin_of_text|>",
    "",
    " ",
    "\n",
};

}  // namespace lomo::fuzz
