// Atomic output: writers create a temporary file next to the target and rename it into place
// only once complete, so a failed or interrupted command never leaves a half-written file under
// the final name and never clobbers an existing output.
#pragma once

#include <string>
#include <vector>

namespace cl {

class AtomicOutput {
 public:
  // Throws InputError if final_path's folder does not exist or final_path is one of inputs.
  explicit AtomicOutput(std::string final_path, const std::vector<std::string>& inputs = {});
  ~AtomicOutput();  // removes the temp file unless commit() ran
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  const std::string& temp_path() const { return temp_path_; }
  const std::string& final_path() const { return final_path_; }
  void commit();  // fsync-free rename(temp, final); throws on failure
  bool committed() const { return committed_; }

 private:
  std::string final_path_;
  std::string temp_path_;
  bool committed_ = false;
};

// Writes contents to path through an AtomicOutput: a failed write (disk full) leaves any old file.
void write_file_atomic(const std::string& path, const std::string& contents,
                       const std::vector<std::string>& inputs = {});

// True when a and b name the same existing file (follows links, compares inodes).
bool same_file(const std::string& a, const std::string& b);

// Throws InputError when out_path names the same file as any of inputs.
void check_not_input(const std::string& out_path, const std::vector<std::string>& inputs);

}  // namespace cl
