// Temp-file-then-rename outputs. The temp file lives in the target's folder so rename() is
// atomic (same filesystem) and a crash leaves only a dot-file, never a half-written target.
#include "core/atomic_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "core/manifest.h"
#include "core/output_claim.h"

namespace fs = std::filesystem;

namespace cl {

void write_file_atomic(const std::string& path, const std::string& contents, const std::vector<std::string>& inputs) {
  AtomicOutput out(path, inputs);
  {
    std::ofstream f(out.temp_path(), std::ios::binary | std::ios::trunc);
    f.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    f.flush();
    if (!f) throw_input("{}: cannot write (disk full?)", path);
  }
  out.commit();
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

void check_not_input(const std::string& out_path, const std::vector<std::string>& inputs) {
  auto same = [&](const std::string& in) {
    return same_file(out_path, in) || fs::weakly_canonical(out_path) == fs::weakly_canonical(in);
  };
  for (const auto& in : inputs) {
    if (in.empty()) continue;
    if (same(in)) throw_input("{}: output would overwrite input {}", out_path, in);
    // A manifest's parts are inputs too. A manifest that does not read is left to its reader,
    // which names what is wrong with it.
    if (!is_manifest(in)) continue;
    std::vector<std::string> parts;
    try {
      parts = read_manifest(in).files;
    } catch (const InputError&) {
    }
    for (const auto& part : parts)
      if (same(part)) throw_input("{}: output would overwrite {}, a part of input {}", out_path, part, in);
  }
}

AtomicOutput::AtomicOutput(std::string final_path, const std::vector<std::string>& inputs)
    : final_path_(std::move(final_path)) {
  check_output_path(final_path_, inputs);
  fs::path p(final_path_);
  fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::random_device rd;
  temp_path_ = (dir / ("." + p.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                       std::to_string(rd() % 1000000)))
                   .string();
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) std::remove(temp_path_.c_str());
}

void AtomicOutput::commit() {
  CL_ASSERT(!committed_, "commit called twice");
  if (std::rename(temp_path_.c_str(), final_path_.c_str()) != 0)
    throw_input("{}: cannot rename temporary output into place", final_path_);
  committed_ = true;
}

}  // namespace cl
