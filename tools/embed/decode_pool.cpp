// Decode pool: bounded look-ahead decoding on worker threads (see decode_pool.h).
#include "tools/embed/decode_pool.h"

#include <algorithm>

namespace cl::embed {

DecodePool::DecodePool(const std::vector<EmbedItem>& items, const PreprocessParams& pre, int64_t batch,
                       int64_t first_batch, int n_workers, int depth)
    : items_(items), pre_(pre), batch_(batch), depth_(depth), consumed_(first_batch), next_item_(first_batch * batch) {
  chw_ = 3 * static_cast<int64_t>(pre.image_size) * pre.image_size;
  slots_.resize(depth);
  for (auto& s : slots_) {
    s.data.resize(static_cast<size_t>(batch * chw_));
    s.err.assign(batch, "");
    s.size.assign(static_cast<size_t>(2 * batch), 0);
  }
  for (int i = 0; i < n_workers; ++i) threads_.emplace_back([this] { work(); });
}

DecodePool::~DecodePool() {
  {
    std::lock_guard<std::mutex> lk(m_);
    stop_ = true;
  }
  cv_work_.notify_all();
  for (auto& t : threads_) t.join();
}

DecodePool::Slot& DecodePool::wait(int64_t b) {
  std::unique_lock<std::mutex> lk(m_);
  Slot& s = slots_[b % depth_];
  const int64_t n = batch_size(b);
  cv_done_.wait(lk, [&] { return s.done == n; });
  return s;
}

void DecodePool::release(int64_t b) {
  {
    std::lock_guard<std::mutex> lk(m_);
    Slot& s = slots_[b % depth_];
    s.done = 0;
    std::fill(s.err.begin(), s.err.end(), "");
    consumed_ = b + 1;
  }
  cv_work_.notify_all();
}

int64_t DecodePool::batch_size(int64_t b) const {
  return std::min<int64_t>(batch_, static_cast<int64_t>(items_.size()) - b * batch_);
}

void DecodePool::work() {
  for (;;) {
    int64_t i;
    {
      std::unique_lock<std::mutex> lk(m_);
      cv_work_.wait(lk, [&] {
        return stop_ || next_item_ >= static_cast<int64_t>(items_.size()) || next_item_ / batch_ < consumed_ + depth_;
      });
      if (stop_ || next_item_ >= static_cast<int64_t>(items_.size())) return;
      i = next_item_++;
    }
    const int64_t b = i / batch_, j = i - b * batch_;
    Slot& s = slots_[b % depth_];
    std::string err;
    std::pair<int, int> size{0, 0};
    try {
      // A refused path is never opened (the precheck already gave it its reason).
      err = items_[i].outside_root ? "outside the image root"
                                   : preprocess_file(items_[i].path, pre_, s.data.data() + j * chw_, nullptr, &size);
    } catch (const std::exception& e) {
      err = std::string("preprocessing failed: ") + e.what();
    }
    {
      std::lock_guard<std::mutex> lk(m_);
      s.err[j] = err;
      s.size[static_cast<size_t>(2 * j)] = size.first;
      s.size[static_cast<size_t>(2 * j + 1)] = size.second;
      if (++s.done == batch_size(b)) cv_done_.notify_all();
    }
  }
}

}  // namespace cl::embed
