// Ground-truth concept masks (in explain/ because it reads and writes images with OpenCV): where
// in each image a concept is, at image resolution, so localisation can be measured (`explain localize`).
//
// Format "conceptlab.masks" (schema 1):
//   ids     strings [N], unique image ids
//   masks/  one dataset per concept: uint8 [N, H, W], coverage 0..255 (255 = the pixel is the
//           concept), one image per deflated chunk; attributes height, width on the group
// Or a folder: DIR/<concept>/<image id with its extension replaced by .png>, 8-bit grey PNGs the
// size of the image; a missing file means the concept is absent from that image.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

namespace cl::explain {

inline constexpr const char* kMasksFormat = "conceptlab.masks";

// Reads masks from a masks file or a mask folder.
class MaskSource {
 public:
  explicit MaskSource(const std::string& path);  // InputError naming path when neither
  ~MaskSource();
  MaskSource(MaskSource&&) noexcept;
  MaskSource& operator=(MaskSource&&) noexcept;
  const std::string& path() const;
  std::vector<std::string> concepts() const;
  // The concept's mask of an image (CV_8U, height x width), empty when the concept is absent from
  // it. InputError naming the file: an unknown concept, an id the masks file lacks, a mask of
  // another size than expected (width x height of the image).
  cv::Mat mask(const std::string& concept_name, const std::string& id, int width, int height) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Streaming writer of a masks file (all masks height x width); images are appended in order.
class MasksWriter {
 public:
  MasksWriter(const std::string& path, const std::vector<std::string>& concepts, int height, int width,
              const nlohmann::json& config, const std::vector<std::string>& inputs = {});
  ~MasksWriter();
  // One image: a CV_8U height x width mask per concept (in concepts order; an empty Mat = absent).
  void append(const std::string& id, const std::vector<cv::Mat>& masks);
  void commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cl::explain
