// Output checks, locks and staged commits (see output_claim.h for why).
#include "core/output_claim.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <random>

#include "core/atomic_file.h"
#include "core/error.h"

namespace fs = std::filesystem;

namespace cl {

void check_output_path(const std::string& path, const std::vector<std::string>& inputs) {
  if (path.empty()) throw_usage("empty output path");
  check_not_input(path, inputs);
  fs::path p(path);
  fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw_input("{}: {} is a file, not a folder", path, dir.string());
  if (!fs::is_directory(dir, ec)) throw_input("{}: output folder {} does not exist", path, dir.string());
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw_input("{}: output folder {} is not writable", path, dir.string());
  if (fs::is_directory(p, ec)) throw_input("{}: is a folder, expected a file path", path);
  // The rename at commit would replace a device, pipe or socket (as root, /dev/null) with a file.
  if (fs::exists(p, ec) && !fs::is_regular_file(p, ec))
    throw_input("{}: exists and is not a regular file (a device, pipe or socket); choose a file path", path);
}

std::string OutputLock::lock_path(const std::string& out_path) {
  fs::path p(out_path);
  fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  return (dir / ("." + p.filename().string() + ".lock")).string();
}

OutputLock::OutputLock(const std::string& out_path) : lock_path_(lock_path(out_path)) {
  fd_ = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw_input("{}: cannot create lock file {} (is the folder writable?)", out_path, lock_path_);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw_input("{}: another conceptlab run is writing this output (it holds {}); wait for it to finish or "
                  "choose another output",
                  out_path, lock_path_);
    throw_input("{}: cannot lock {}", out_path, lock_path_);
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0 && ::write(fd_, pid.data(), pid.size()) < 0) {
    // The pid is a courtesy for people looking at the file; the lock itself is the flock.
  }
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  ::unlink(lock_path_.c_str());
  ::close(fd_);
}

StagedOutputs::~StagedOutputs() {
  if (committed_) return;
  for (const auto& [staging, final_path] : staged_) std::remove(staging.c_str());
}

std::string StagedOutputs::stage(const std::string& final_path, const std::vector<std::string>& inputs) {
  check_output_path(final_path, inputs);
  for (const auto& s : staged_)
    if (fs::weakly_canonical(s.second) == fs::weakly_canonical(final_path))
      throw_input("{}: given as two different outputs of one command", final_path);
  fs::path p(final_path);
  fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::random_device rd;
  std::string staging = (dir / ("." + p.filename().string() + ".staged-" + std::to_string(::getpid()) + "-" +
                                std::to_string(rd() % 1000000)))
                            .string();
  staged_.emplace_back(staging, final_path);
  return staging;
}

void StagedOutputs::commit_all() {
  CL_ASSERT(!committed_, "commit_all called twice");
  for (const auto& [staging, final_path] : staged_) {
    std::error_code ec;
    if (!fs::exists(staging, ec)) continue;
    if (std::rename(staging.c_str(), final_path.c_str()) != 0)
      throw_input("{}: cannot rename the finished output into place", final_path);
  }
  committed_ = true;
}

}  // namespace cl
