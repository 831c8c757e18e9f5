// The embed run's checkpoint, OUT.partial: an append-only log of finished batches so an
// interrupted run (killed, crashed, out of power) continues with --resume to a bitwise-identical
// result. Layout: "CLPART1\n" then records [u32 magic][u8 type][u64 len][payload][u64
// fnv1a(payload)]; type 0 = header (the run's fingerprint JSON), type 1 = one finished batch. A
// torn trailing record fails its length or checksum and is cut off on resume.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cl::embed {

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull);

// One batch of the run as embedded: which items worked (and why not), and their rows.
struct BatchResult {
  int64_t first = 0;                 // index of the batch's first item
  std::vector<uint8_t> ok;           // per item of the batch
  std::vector<std::string> reasons;  // per item, "" when ok
  int64_t dim = 0;
  std::vector<float> rows;           // [n_ok, dim]
  // With patches: the grid, patch rows [n_ok, grid_h * grid_w, dim] and the decoded images'
  // sizes [n_ok, 2] (width, height), which place the patches on the originals.
  int64_t grid_h = 0, grid_w = 0;
  std::vector<float> patches;
  std::vector<int32_t> sizes;
};

class RunCheckpoint {
 public:
  RunCheckpoint() = default;
  RunCheckpoint(const RunCheckpoint&) = delete;
  RunCheckpoint& operator=(const RunCheckpoint&) = delete;
  ~RunCheckpoint();

  // A fresh checkpoint holding only the header (replaces any old file atomically).
  void start(const std::string& path, const nlohmann::json& header);
  // Loads the finished batches of a matching checkpoint, cuts off any torn tail and reopens for
  // appending. False when there is no checkpoint file; InputError when it belongs to another run.
  bool resume(const std::string& path, const nlohmann::json& header, int64_t batch, std::vector<BatchResult>* done);
  // Appends and flushes one batch; InputError ("disk full?") when the write fails.
  void append(const BatchResult& b);
  void close();

 private:
  void open_append();
  std::string path_;
  std::FILE* f_ = nullptr;
};

}  // namespace cl::embed
