// Claiming a command's outputs before its work starts. Long commands used to discover an
// unwritable --out, or a side file (OUT.log.jsonl, OUT.ckpt, OUT.partial) named like an input,
// only when they first wrote; two runs on one output interleaved their logs; a command with two
// outputs could commit the first and then fail on the second. These three pieces close that:
//  - check_output_path: every output path (main and side files) against the inputs and the
//    folder, up front;
//  - OutputLock: an advisory lock (flock) on a hidden file beside the output, so a second run on
//    the same output is refused while the first holds it; the kernel drops it when a process
//    dies, so a killed run never leaves a stale lock;
//  - StagedOutputs: outputs written under staging names and renamed into place together, only
//    after every one of them was written.
#pragma once

#include <string>
#include <vector>

namespace cl {

// InputError (naming the path) when path is empty, names an input, is a folder, a device or a
// pipe, or its folder is missing, not a folder or not writable.
void check_output_path(const std::string& path, const std::vector<std::string>& inputs);

class OutputLock {
 public:
  // InputError when another process holds the lock on out_path ("another conceptlab run is
  // writing ..."). The lock file is .NAME.lock in out_path's folder, removed on release.
  explicit OutputLock(const std::string& out_path);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  static std::string lock_path(const std::string& out_path);

 private:
  int fd_ = -1;
  std::string lock_path_;
};

class StagedOutputs {
 public:
  StagedOutputs() = default;
  ~StagedOutputs();  // removes the staged files unless commit_all() ran
  StagedOutputs(const StagedOutputs&) = delete;
  StagedOutputs& operator=(const StagedOutputs&) = delete;
  // Checks final_path (check_output_path) and returns the path to write it under instead.
  std::string stage(const std::string& final_path, const std::vector<std::string>& inputs);
  // Renames every staged file that exists onto its final path, in the order staged.
  void commit_all();

 private:
  std::vector<std::pair<std::string, std::string>> staged_;  // (staging, final)
  bool committed_ = false;
};

}  // namespace cl
