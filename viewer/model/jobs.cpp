// The viewer's worker thread (see jobs.h).
#include "viewer/model/jobs.h"

#include <spdlog/spdlog.h>

namespace cl::viewer {

class JobRunner::Sink : public ProgressSink {
 public:
  explicit Sink(JobRunner& r) : r_(r) {}
  void on_update(const ProgressState& s) override {
    std::lock_guard<std::mutex> lock(r_.mu_);
    r_.progress_ = s;
  }

 private:
  JobRunner& r_;
};

JobRunner::JobRunner() : thread_([this] { loop(); }) {}

JobRunner::~JobRunner() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    queue_.clear();
    if (sink_) sink_->request_cancel();
  }
  cv_.notify_all();
  thread_.join();
}

void JobRunner::submit(const std::string& label, Work work) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.emplace_back(label, std::move(work));
  }
  cv_.notify_all();
}

JobRunner::Status JobRunner::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {busy_, queue_.size(), running_label_, progress_};
}

void JobRunner::cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  if (sink_) sink_->request_cancel();
}

bool JobRunner::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !busy_ && queue_.empty() && done_.empty();
}

void JobRunner::drain() {
  std::deque<std::function<void()>> ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready.swap(done_);
  }
  for (auto& fn : ready) {
    try {
      fn();
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = e.what();
    }
  }
}

std::string JobRunner::take_error() {
  std::lock_guard<std::mutex> lock(mu_);
  std::string e;
  e.swap(error_);
  return e;
}

void JobRunner::loop() {
  for (;;) {
    std::pair<std::string, Work> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      running_label_ = job.first;
      progress_ = {};
    }
    Sink sink(*this);
    {
      std::lock_guard<std::mutex> lock(mu_);
      sink_ = &sink;
    }
    std::function<void()> result;
    std::string error;
    try {
      result = job.second(sink);
    } catch (const Cancelled&) {
      spdlog::info("{}: cancelled", job.first);
    } catch (const std::exception& e) {
      error = job.first + ": " + e.what();
    }
    std::lock_guard<std::mutex> lock(mu_);
    sink_ = nullptr;
    busy_ = false;
    running_label_.clear();
    if (result) done_.push_back(std::move(result));
    if (!error.empty()) error_ = error;
  }
}

}  // namespace cl::viewer
