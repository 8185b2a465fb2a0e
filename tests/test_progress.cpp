// Progress a person can watch: the step line's fields, the live line on a terminal against plain
// lines elsewhere, and the progress of long work (silent under a second, then percent and ETA).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/memory.h"
#include "core/progress.h"
#include "model/loader.h"
#include "test_util.h"
#include "train/step_line.h"

namespace lomo {
namespace {

namespace fs = std::filesystem;

std::string contents(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, f)) s.append(buf, n);
  return s;
}

TEST(StepLine, CarriesStepPercentTimesMemoryAndTheOptionalFields) {
  StepLine s;
  s.step = 3;
  s.total = 12;
  s.loss = 2.34567;
  s.lr = 1e-4;
  s.tokens_per_s = 850.4;
  s.elapsed_s = 45;
  s.eta_s = 3725;
  s.rss_bytes = size_t{640} << 20;
  EXPECT_EQ(step_line(s),
            "step 3/12  loss 2.3457  lr 1.000e-04  tok/s 850  25%  elapsed 0:45  ETA 1:02:05  "
            "mem 0.62 GiB");
  s.grad_norm = 0.5;
  s.loss_scale = 1024;
  s.skipped = true;
  EXPECT_EQ(step_line(s).substr(step_line(s).find("GiB") + 3),
            "  grad_norm 0.5000  loss_scale 1024  skipped: gradient overflow, nothing updated, "
            "loss scale halved");
}

TEST(Progress, DurationsReadAsMinutesOrHours) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(59.6), "1:00");
  EXPECT_EQ(format_duration(3599), "59:59");
  EXPECT_EQ(format_duration(3600), "1:00:00");
  EXPECT_EQ(format_duration(-5), "0:00");
}

TEST(Progress, LiveLineRewritesInPlaceAndKeepsTheLastOnEnd) {
  std::FILE* f = std::tmpfile();
  LiveLine live(f, true);
  live.show("step 1/2");
  live.show("step 2/2");
  live.end();
  live.end();  // nothing showing: nothing printed
  EXPECT_EQ(contents(f), "\rstep 1/2\x1b[K\rstep 2/2\x1b[K\n");
  std::fclose(f);
  f = std::tmpfile();
  LiveLine plain(f, false);
  plain.show("step 1/2");
  plain.show("step 2/2");
  plain.end();
  plain.erase();
  EXPECT_EQ(contents(f), "step 1/2\nstep 2/2\n");
  std::fclose(f);
}

TEST(Progress, QuietUnderASecondThenPercentElapsedAndEta) {
  std::FILE* f = std::tmpfile();
  LiveLine plain(f, false);
  {
    Progress p(plain, "load", "tensors");
    p.update(1, 4);
    p.update(4, 4);
    p.finish();
  }
  EXPECT_EQ(contents(f), "") << "work under a second printed something";
  {
    Progress p(plain, "load", "parameters");
    p.update(0, 4);
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    p.update(1, 4);  // a second in, a quarter done: three more seconds or so
    p.update(2, 4);  // plain lines at most every 10 s: not shown
    p.update(4, 4);
    p.finish();
  }
  const std::string text = contents(f);
  EXPECT_NE(text.find("load     25%  1/4 parameters  elapsed 0:01  ETA 0:03\n"), std::string::npos)
      << text;
  EXPECT_EQ(text.find(" 50%"), std::string::npos) << text;
  EXPECT_NE(text.find("load    4 parameters in 1."), std::string::npos) << text;
  std::fclose(f);
}

TEST(Progress, CountsReadAtAGlance) {
  EXPECT_EQ(format_count(0), "0");
  EXPECT_EQ(format_count(9999), "9999");
  EXPECT_EQ(format_count(12345), "12.3 k");
  EXPECT_EQ(format_count(999949), "999.9 k");
  EXPECT_EQ(format_count(999950), "1.0 M");
  EXPECT_EQ(format_count(134515008), "134.5 M");
  EXPECT_EQ(format_count(999950000), "1.00 G");
  EXPECT_EQ(format_count(6738415616), "6.74 G");
}

// Loading reports parameters, not tensors: one large embedding weighs what it costs, so the ETA
// of a 7B load is not skewed by its first tensor (it showed 4 h for a 3-minute init).
TEST(Progress, LoadingCountsParametersTensorByTensor) {
  for (const std::string& model : {test::fixture_dir("llama_gqa") + "/model",
                                   test::fixture_dir("smollm_tied") + "/model"}) {
    std::vector<std::pair<int64_t, int64_t>> seen;  // (done, total)
    MemoryTracker t;
    const Model m = load_model(model, t, StorageDtype::BF16,
                               [&](int64_t done, int64_t total) { seen.emplace_back(done, total); });
    const auto& ps = m.params.all();
    ASSERT_EQ(seen.size(), ps.size() + 1) << model;  // before each tensor, and at the end
    int64_t done = 0;
    for (size_t i = 0; i < ps.size(); ++i) {
      EXPECT_EQ(seen[i], std::make_pair(done, m.params.total_numel())) << ps[i].name;
      done += ps[i].numel();
    }
    EXPECT_EQ(seen.back(), std::make_pair(done, done));
  }
}

// `lomo train` on a tiny model, once through a pipe and once on a pseudo-terminal (script(1)):
// the same fields either way; "\r" and ESC[K only on the terminal, whose output still ends each
// kept line with a newline.
TEST(Progress, TrainShowsALiveLineOnATerminalAndPlainLinesInAPipe) {
  const fs::path dir = fs::temp_directory_path() / ("lomo_progress_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "data.jsonl") << "{\"input_ids\": [1, 2, 3, 4, 5]}\n"
                                       "{\"input_ids\": [7, 8, 9, 10]}\n";
  auto cmd = [&](const std::string& out) {
    return std::string(LOMO_BINARY) + " train --model " + test::fixture_dir("llama_gqa") +
           "/model --data " + (dir / "data.jsonl").string() + " --out " + (dir / out).string() +
           " --steps 3 --batch-size 1 --threads 1";
  };
  auto run = [](const std::string& c) {
    const test::CommandResult r = test::run_command(c + " 2>&1");
    EXPECT_EQ(r.status, 0) << c << "\n" << r.output;
    return r.output;
  };
  const std::string piped = run(cmd("piped"));
  const std::string tty = run("TERM=xterm script -qefc '" + cmd("tty") + "' /dev/null");
  for (const std::string* out : {&piped, &tty}) {
    for (const char* field : {"step 1/3  loss ", "step 3/3  loss ", "100%", "elapsed 0:0",
                              "ETA 0:00", "mem ", "tok/s ", "memory  predicted", ": fits",
                              "done    loss", "saved   "}) {
      EXPECT_NE(out->find(field), std::string::npos)
          << "no \"" << field << "\" in " << (out == &piped ? "piped" : "tty") << ":\n" << *out;
    }
  }
  EXPECT_EQ(piped.find('\r'), std::string::npos) << piped;
  EXPECT_EQ(piped.find('\x1b'), std::string::npos) << piped;
  EXPECT_NE(piped.find("ETA 0:00  mem "), std::string::npos);
  EXPECT_NE(tty.find("\rstep 2/3  loss "), std::string::npos) << tty;
  EXPECT_NE(tty.find("\x1b[K"), std::string::npos) << tty;
  // The live step line is ended before the summary, which starts on a line of its own.
  const size_t done = tty.find("done    loss");
  ASSERT_NE(done, std::string::npos);
  EXPECT_TRUE(tty[done - 1] == '\n') << tty;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lomo
