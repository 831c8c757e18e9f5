// A frozen image encoder: a TorchScript module ([B,3,H,W] float -> [B,D]) and the preprocessing
// it expects, loaded once onto a device. The exporter, retrieval by example image and the viewer
// all embed through it. TorchScript files are programs: load only encoders you trust.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "core/device.h"
#include "tools/embed/preprocess.h"

namespace cl::embed {

class Encoder {
 public:
  // InputError naming the model when it is missing or not a TorchScript module; fp16 needs CUDA.
  Encoder(const std::string& model_path, const PreprocessParams& pre, Device device, bool fp16 = false);
  ~Encoder();
  Encoder(Encoder&&) noexcept;
  Encoder& operator=(Encoder&&) noexcept;

  const std::string& model_path() const;
  const PreprocessParams& preprocess() const;
  Device device() const;
  int64_t dim() const;  // 0 until the first forward
  int64_t input_size() const { return preprocess().image_size; }

  // Preprocessed inputs chw [n, 3, S, S] -> embeddings [n, D] row-major. Checks the model's
  // output (a 2-D float tensor with n rows, finite, the same D every call) and names the model.
  std::vector<float> forward(const float* chw, int64_t n);
  // Decoded RGB uint8 images (any size) -> embeddings [n, D]: resize/crop/normalise, then forward.
  std::vector<float> embed(const std::vector<cv::Mat>& rgb_images);
  // One decoded RGB image -> its embedding [D].
  std::vector<float> embed(const cv::Mat& rgb_image);
  // One image file -> its embedding [D]; InputError naming the file when it cannot be used.
  std::vector<float> embed_file(const std::string& path);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cl::embed
