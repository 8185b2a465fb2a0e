// Tokenizer throughput: encodes every line of a text file with a model folder's tokenizer on one
// thread, several times, and prints the median MB/s and the token count as JSON.
//   usage: tokenize_rate MODEL_DIR TEXT_FILE [repeats=3]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "text/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: tokenize_rate MODEL_DIR TEXT_FILE [repeats]\n");
    return 2;
  }
  const auto tok = lomo::text::load_tokenizer(argv[1]);
  if (!tok) {
    std::fprintf(stderr, "%s: no tokenizer\n", argv[1]);
    return 1;
  }
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
  std::ifstream in(argv[2]);
  std::vector<std::string> lines;
  size_t bytes = 0;
  for (std::string l; std::getline(in, l);) {
    bytes += l.size() + 1;
    lines.push_back(std::move(l));
  }
  std::vector<double> secs;
  size_t tokens = 0;
  for (int r = 0; r < repeats; ++r) {
    tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& l : lines) tokens += tok->encode(l).size();
    secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(secs.begin(), secs.end());
  std::printf("{\"impl\": \"lomo\", \"bytes\": %zu, \"lines\": %zu, \"tokens\": %zu, \"seconds_median\": %.3f, \"mb_per_s\": %.2f}\n",
              bytes, lines.size(), tokens, secs[secs.size() / 2], bytes / 1e6 / secs[secs.size() / 2]);
  return 0;
}
