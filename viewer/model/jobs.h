// Background work for the viewer: one worker thread runs heavy jobs (loading, annotation AUROCs,
// full intervention experiments, query by example) in order, reporting through a ProgressSink the
// frame loop reads and can cancel; results come back as callbacks run on the frame thread by
// drain(), so model state is only ever touched there.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "core/progress.h"

namespace cl::viewer {

class JobRunner {
 public:
  JobRunner();
  ~JobRunner();  // cancels the running job and joins
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  // work runs on the worker; it returns the callback to run on the frame thread (may be empty).
  // A thrown exception becomes last_error() (Cancelled is silent).
  using Work = std::function<std::function<void()>(ProgressSink&)>;
  void submit(const std::string& label, Work work);

  struct Status {
    bool busy = false;
    size_t queued = 0;
    std::string label;
    ProgressState progress;
  };
  Status status() const;
  void cancel();                  // the running job (queued ones still run)
  bool idle() const;              // nothing running, queued or waiting to be drained
  void drain();                   // frame thread: run finished jobs' callbacks
  std::string take_error();       // frame thread: the last job error, then ""

 private:
  void loop();
  class Sink;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::string, Work>> queue_;
  std::deque<std::function<void()>> done_;
  std::string error_, running_label_;
  ProgressState progress_;
  bool busy_ = false, stop_ = false;
  Sink* sink_ = nullptr;
  std::thread thread_;
};

}  // namespace cl::viewer
