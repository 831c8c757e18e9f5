// Progress line: redraws at most ~5 times a second with \r on a TTY; nothing when piped.
#include "core/progress.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

#include <fmt/format.h>

namespace cl {
namespace {
std::atomic<bool> g_quiet{false};

std::string human_time(double s) {
  if (s < 0 || s > 1e7) return "?";
  int t = static_cast<int>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}
}  // namespace

void Progress::set_global_quiet(bool q) { g_quiet = q; }
bool Progress::global_quiet() { return g_quiet; }

Progress::Progress(std::string label, int64_t total, bool quiet, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  enabled_ = !quiet && !g_quiet && ::isatty(STDERR_FILENO);
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::add(int64_t n) {
  done_ += n;
  draw(false);
}

void Progress::set_suffix(std::string s) { suffix_ = std::move(s); }

void Progress::draw(bool force) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  double el = std::chrono::duration<double>(now - start_).count();
  double rate = el > 0 ? static_cast<double>(done_) / el : 0.0;
  std::string line;
  if (total_ > 0) {
    double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : -1;
    line = fmt::format("{}: {}/{} ({:.0f}%) {:.1f} {}/s ETA {}", label_, done_, total_,
                       100.0 * static_cast<double>(done_) / static_cast<double>(total_), rate, unit_, human_time(eta));
  } else {
    line = fmt::format("{}: {} {:.1f} {}/s", label_, done_, rate, unit_);
  }
  if (!suffix_.empty()) line += "  " + suffix_;
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (!enabled_) return;
  draw(true);
  std::fprintf(stderr, "\n");
}

}  // namespace cl
