// A frozen image encoder: a TorchScript module and the preprocessing it expects, loaded once onto
// a device. Its output [B, D] is the embedding; a feature map [B, D, h, w] (CNN) or a token
// sequence [B, T, D] (ViT) is a grid of patch embeddings and a pooled image embedding. The
// exporter, retrieval by example image and the viewer all embed through it. TorchScript files
// are programs: load only encoders you trust.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "core/device.h"
#include "tools/embed/preprocess.h"

namespace cl::embed {

// How a spatial output becomes embeddings. Member initializers are the defaults.
struct OutputParams {
  // Token outputs [B, T, D]: the image embedding is the class token ("cls"), the mean of the patch
  // tokens ("patches") or the mean of all tokens ("all"); "auto": cls when there is a class token.
  // Feature maps: the image embedding is the mean over the grid.
  std::string tokens = "auto";
  // Token outputs: tokens before the patch grid (the class token first, then any registers);
  // -1: detected (1 when T - 1 is a square and T is not, else 0).
  int prefix_tokens = -1;
  std::string grid;  // token outputs: "HxW" for a grid that is not square; "" = square
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(OutputParams, tokens, prefix_tokens, grid)
void validate(const OutputParams& p, const std::string& source);

// One batch through the model: pooled_nd [n, D]; with patches, patches_npd [n, P, D] in row-major
// grid order (grid_h x grid_w).
struct EncoderOutput {
  std::vector<float> pooled_nd;
  std::vector<float> patches_npd;
  int64_t grid_h = 0, grid_w = 0;
};

class Encoder {
 public:
  // InputError naming the model when it is missing or not a TorchScript module; fp16 needs CUDA.
  Encoder(const std::string& model_path, const PreprocessParams& pre, Device device, bool fp16 = false,
          const OutputParams& out = {});
  ~Encoder();
  Encoder(Encoder&&) noexcept;
  Encoder& operator=(Encoder&&) noexcept;

  const std::string& model_path() const;
  const PreprocessParams& preprocess() const;
  Device device() const;
  int64_t dim() const;  // 0 until the first forward
  int64_t input_size() const { return preprocess().image_size; }

  // Preprocessed inputs chw [n, 3, S, S] -> embeddings [n, D] row-major. Checks the model's
  // output (n rows, finite, the same shape every call) and names the model.
  std::vector<float> forward(const float* chw, int64_t n);
  // Same, with the patch grid; InputError naming the model when its output has none ([B, D]) or
  // the tokens do not form the grid.
  EncoderOutput forward_patches(const float* chw, int64_t n);
  // Decoded RGB uint8 images (any size) -> embeddings [n, D]: resize/crop/normalise, then forward.
  std::vector<float> embed(const std::vector<cv::Mat>& rgb_images);
  // One decoded RGB image -> its embedding [D].
  std::vector<float> embed(const cv::Mat& rgb_image);
  // One image file -> its embedding [D]; InputError naming the file when it cannot be used.
  std::vector<float> embed_file(const std::string& path);

 private:
  EncoderOutput run(const float* chw, int64_t n, bool with_patches);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cl::embed
