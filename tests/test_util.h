// Test helpers: scratch folders, running the conceptlab binary, reading files.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace cl::test {

// A fresh empty folder under the system temp dir, removed at scope exit.
struct TempDir {
  TempDir();
  ~TempDir();
  std::filesystem::path path;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs the built conceptlab binary with args (no shell interpretation of args).
RunResult run_cli(const std::vector<std::string>& args);
// Runs any program (absolute path) with args, stdout and stderr captured.
RunResult run_program(const std::string& program, const std::vector<std::string>& args);

// True when /usr/bin/python3 imports every module of the comma list (cross-checks skip otherwise).
bool python_has(const std::string& modules);

std::string read_text(const std::string& path);
void write_text(const std::string& path, const std::string& text);
// A loopback TCP port nothing listens on now (the kernel's pick for port 0).
int free_tcp_port();
std::vector<unsigned char> read_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes);

// ../shared beside the checkout, or "" when absent (optional tests then skip).
std::string shared_dir();

}  // namespace cl::test
