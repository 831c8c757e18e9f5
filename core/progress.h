// Progress and cancellation for long jobs, passed as a parameter (never global state) to every
// long-running library call: SAE training and encoding, embedding, the CBM protocols. The CLI
// passes a TerminalProgress (a redrawn line with items/s and ETA on a TTY, silent when piped or
// quiet); a GUI passes a CallbackProgress from its worker thread and cancels with
// request_cancel(). Library code opens one Progress task per stage on the sink it was given.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace cl {

// Thrown out of a library call whose sink asked it to stop; outputs are left as on any error
// (temp files removed, checkpoints kept).
struct Cancelled : std::runtime_error {
  Cancelled() : std::runtime_error("cancelled") {}
};

// One snapshot of a task, as a sink sees it.
struct ProgressState {
  std::string label, unit, note;
  int64_t done = 0, total = 0;  // total <= 0: unknown
  double elapsed_s = 0;
  bool finished = false;
};

// Receives task events. Implementations must be thread safe: tasks may advance from workers.
class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  virtual void on_update(const ProgressState& s) = 0;  // begin, every advance, note change and end
  void request_cancel() { cancel_ = true; }
  bool cancel_requested() const { return cancel_; }

 private:
  std::atomic<bool> cancel_{false};
};

// A sink that shows nothing and is never cancelled (the default of library calls).
ProgressSink& silent_progress();

// "label: done/total (pct) rate unit/s ETA  note" redrawn on stderr, at most ~5 times a second,
// only when stderr is a TTY and quiet is false.
class TerminalProgress : public ProgressSink {
 public:
  explicit TerminalProgress(bool quiet = false);
  void on_update(const ProgressState& s) override;

 private:
  bool enabled_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point last_draw_{};
};

// Forwards every event to a callback (a GUI copies the state for its frame loop).
class CallbackProgress : public ProgressSink {
 public:
  explicit CallbackProgress(std::function<void(const ProgressState&)> fn) : fn_(std::move(fn)) {}
  void on_update(const ProgressState& s) override;

 private:
  std::mutex mu_;
  std::function<void(const ProgressState&)> fn_;
};

// One stage of a long job on a sink. add() and set_note() are thread safe; add() and
// check_cancel() throw Cancelled once the sink asked to stop.
class Progress {
 public:
  Progress(ProgressSink& sink, std::string label, int64_t total, std::string unit = "items");
  ~Progress();  // finishes the task
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void add(int64_t n = 1);
  void set_note(std::string note);
  void check_cancel() const;
  void finish();
  ProgressSink& sink() const { return sink_; }

 private:
  void emit();  // with mu_ held
  ProgressSink& sink_;
  ProgressState state_;
  std::chrono::steady_clock::time_point start_;
  mutable std::mutex mu_;
};

}  // namespace cl
