// Progress line for long jobs: items/s and ETA, redrawn in place on a TTY (stderr), silent
// otherwise or with quiet=true, so logs and --json output stay clean.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace cl {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool quiet = false, std::string unit = "items");
  ~Progress();
  void add(int64_t n);            // n more items done
  void set_suffix(std::string s);  // extra text such as "loss 0.012"
  void finish();

  // Global switch set once by main from --quiet.
  static void set_global_quiet(bool q);
  static bool global_quiet();

 private:
  void draw(bool force);
  std::string label_, unit_, suffix_;
  int64_t total_, done_ = 0;
  bool enabled_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace cl
