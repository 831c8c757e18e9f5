// Progress sinks and tasks. The terminal sink redraws with \r on a TTY; nothing when piped.
#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace cl {
namespace {

class SilentProgress : public ProgressSink {
 public:
  void on_update(const ProgressState&) override {}
};

std::string human_time(double s) {
  if (s < 0 || s > 1e7) return "?";
  int t = static_cast<int>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

}  // namespace

ProgressSink& silent_progress() {
  // Never cancelled: nothing holds a reference that could call request_cancel() on purpose.
  static SilentProgress s;
  return s;
}

TerminalProgress::TerminalProgress(bool quiet) : enabled_(!quiet && ::isatty(STDERR_FILENO)) {}

void TerminalProgress::on_update(const ProgressState& s) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lk(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (!s.finished && s.done > 0 && now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  const double rate = s.elapsed_s > 0 ? static_cast<double>(s.done) / s.elapsed_s : 0.0;
  std::string line;
  if (s.total > 0) {
    const double eta = rate > 0 ? static_cast<double>(s.total - s.done) / rate : -1;
    line = fmt::format("{}: {}/{} ({:.0f}%) {:.1f} {}/s ETA {}", s.label, s.done, s.total,
                       100.0 * static_cast<double>(s.done) / static_cast<double>(s.total), rate, s.unit,
                       human_time(eta));
  } else {
    line = fmt::format("{}: {} {:.1f} {}/s", s.label, s.done, rate, s.unit);
  }
  if (!s.note.empty()) line += "  " + s.note;
  std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), s.finished ? "\n" : "");
  std::fflush(stderr);
}

void CallbackProgress::on_update(const ProgressState& s) {
  std::lock_guard<std::mutex> lk(mu_);
  if (fn_) fn_(s);
}

Progress::Progress(ProgressSink& sink, std::string label, int64_t total, std::string unit)
    : sink_(sink), start_(std::chrono::steady_clock::now()) {
  state_.label = std::move(label);
  state_.unit = std::move(unit);
  state_.total = total;
  std::lock_guard<std::mutex> lk(mu_);
  emit();
}

Progress::~Progress() { finish(); }

void Progress::emit() {
  state_.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  sink_.on_update(state_);
}

void Progress::add(int64_t n) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    state_.done += n;
    emit();
  }
  check_cancel();
}

void Progress::set_note(std::string note) {
  std::lock_guard<std::mutex> lk(mu_);
  state_.note = std::move(note);
}

void Progress::check_cancel() const {
  if (sink_.cancel_requested()) throw Cancelled();
}

void Progress::finish() {
  std::lock_guard<std::mutex> lk(mu_);
  if (state_.finished) return;
  state_.finished = true;
  emit();
}

}  // namespace cl
