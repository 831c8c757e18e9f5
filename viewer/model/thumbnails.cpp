// Background thumbnail decoding (see thumbnails.h).
#include "viewer/model/thumbnails.h"

#include <algorithm>
#include <exception>
#include <filesystem>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace cl::viewer {

Thumbnail decode_thumbnail(const std::string& path, int size) {
  Thumbnail t;
  t.path = path;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    t.error = "missing file";
    return t;
  }
  cv::Mat img = cv::imread(path, cv::IMREAD_COLOR);
  if (img.empty()) {
    t.error = "not an image OpenCV reads";
    return t;
  }
  return thumbnail_of(path, img, size);
}

Thumbnail thumbnail_of(const std::string& path, const cv::Mat& img, int size) {
  Thumbnail t;
  t.path = path;
  const double s = std::min(1.0, double(size) / double(std::max(img.cols, img.rows)));
  cv::Mat small;
  if (s < 1.0)
    cv::resize(img, small, cv::Size(std::max(1, int(img.cols * s + 0.5)), std::max(1, int(img.rows * s + 0.5))), 0, 0,
               cv::INTER_AREA);
  else
    small = img;
  cv::Mat rgba;
  cv::cvtColor(small, rgba, cv::COLOR_BGR2RGBA);
  t.width = rgba.cols, t.height = rgba.rows;
  t.rgba.assign(rgba.data, rgba.data + rgba.total() * 4);
  return t;
}

ThumbnailLoader::ThumbnailLoader(int n_threads, int size) : size_(size) {
  for (int i = 0; i < std::max(1, n_threads); ++i) threads_.emplace_back([this] { loop(); });
}

ThumbnailLoader::~ThumbnailLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThumbnailLoader::request(const std::string& path) {
  request(path, [path, size = size_] { return decode_thumbnail(path, size); });
}

void ThumbnailLoader::request(const std::string& key, std::function<Thumbnail()> make) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!requested_.insert(key).second) return;
    queue_.emplace_front(key, std::move(make));  // the latest request is what is on screen now
  }
  cv_.notify_one();
}

void ThumbnailLoader::forget(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  requested_.erase(key);
}

std::vector<Thumbnail> ThumbnailLoader::take_ready() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Thumbnail> out;
  out.swap(ready_);
  return out;
}

bool ThumbnailLoader::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.empty() && n_busy_ == 0 && ready_.empty();
}

void ThumbnailLoader::loop() {
  for (;;) {
    std::pair<std::string, std::function<Thumbnail()>> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      ++n_busy_;
    }
    Thumbnail t;
    try {
      t = job.second();
    } catch (const std::exception& e) {  // a broken file must not end the thread: the tile says why
      t.error = e.what();
    }
    t.path = job.first;
    std::lock_guard<std::mutex> lock(mu_);
    --n_busy_;
    ready_.push_back(std::move(t));
  }
}

}  // namespace cl::viewer
