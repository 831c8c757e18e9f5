// The embed run's decode pool: worker threads decode and preprocess images into batch slots
// while the model runs on the previous batch. Workers claim single items in order, but never
// more than `depth` batches ahead of the batch the model is consuming, so memory stays bounded.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tools/embed/preprocess.h"

namespace cl::embed {

struct EmbedItem {
  std::string id;
  std::string path;
  bool outside_root = false;  // CSV id absolute or climbing out with ".." (refused unless allowed)
};

class DecodePool {
 public:
  struct Slot {
    std::vector<float> data;       // [batch, 3, S, S]
    std::vector<std::string> err;  // per item: "" or why it could not be used
    std::vector<int32_t> size;     // [batch, 2]: each decoded image's width, height
    int64_t done = 0;
  };

  DecodePool(const std::vector<EmbedItem>& items, const PreprocessParams& pre, int64_t batch, int64_t first_batch,
             int n_workers, int depth);
  ~DecodePool();  // stops and joins the workers
  DecodePool(const DecodePool&) = delete;
  DecodePool& operator=(const DecodePool&) = delete;

  // Waits until batch b (the next to consume) is fully preprocessed.
  Slot& wait(int64_t b);
  // The model is done with batch b: its slot may be refilled.
  void release(int64_t b);
  int64_t batch_size(int64_t b) const;

 private:
  void work();
  const std::vector<EmbedItem>& items_;
  const PreprocessParams pre_;
  const int64_t batch_;
  const int depth_;
  int64_t chw_ = 0;
  std::vector<Slot> slots_;
  std::mutex m_;
  std::condition_variable cv_work_, cv_done_;
  bool stop_ = false;
  int64_t consumed_, next_item_;
  std::vector<std::thread> threads_;
};

}  // namespace cl::embed
