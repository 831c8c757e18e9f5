// Thumbnails for the image grids: decoded and shrunk with OpenCV on a small pool of background
// threads (never on the frame thread), newest requests first so the images on screen come before
// those scrolled past; the frame thread takes finished ones and uploads them as textures. Derived
// pictures (heatmap overlays, viewer/model/overlays.h) go through the same queue under their own key.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

namespace cv {
class Mat;
}

namespace cl::viewer {

struct Thumbnail {
  std::string path;           // the image file, or the key of a derived picture
  int width = 0, height = 0;
  std::vector<uint8_t> rgba;  // [height, width, 4]
  std::string error;          // missing or unreadable file: drawn as a placeholder
};

class ThumbnailLoader {
 public:
  // size: the longer side in pixels.
  ThumbnailLoader(int n_threads, int size);
  ~ThumbnailLoader();
  ThumbnailLoader(const ThumbnailLoader&) = delete;
  ThumbnailLoader& operator=(const ThumbnailLoader&) = delete;

  // Queues a decode unless this path was requested already.
  void request(const std::string& path);
  // Queues make() under key unless the key was requested already; the result's path is the key.
  void request(const std::string& key, std::function<Thumbnail()> make);
  // The key may be requested again (a bounded texture cache dropped its picture).
  void forget(const std::string& key);
  // Frame thread: the thumbnails finished since the last call.
  std::vector<Thumbnail> take_ready();
  bool idle() const;  // nothing queued, decoding or waiting to be taken
  int size() const { return size_; }

 private:
  void loop();
  int size_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::string, std::function<Thumbnail()>>> queue_;
  std::unordered_set<std::string> requested_;
  std::vector<Thumbnail> ready_;
  int n_busy_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// Decodes one image file to an RGBA thumbnail whose longer side is `size` (no upscaling).
Thumbnail decode_thumbnail(const std::string& path, int size);
// The same shrink and RGBA conversion of a decoded BGR image.
Thumbnail thumbnail_of(const std::string& path, const cv::Mat& bgr, int size);

}  // namespace cl::viewer
