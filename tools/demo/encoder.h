// The frozen demo encoder: a TorchScript module (colour prototypes, oriented ridge and spot
// filters, edge and corner energy, pooled globally and on a 3x3 grid), then per concept a
// detector trained at build time on generated images that scales a fixed random direction, plus
// a weak random projection of all features. A stand-in for a foundation model: concepts are
// sparse, strong directions in its embeddings (what an SAE can discover), no single dimension is
// a concept, and every detector computes its concept from pixels.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "tools/embed/preprocess.h"

namespace cl::demo {

inline constexpr int kDemoEncoderInput = 128;  // model input side (images are resized to this)
inline constexpr int kDemoEncoderDim = 512;    // embedding dimension
inline constexpr int kDemoEncoderGrid = 8;     // patch tokens: a G x G grid of 16 x 16 input pixels

// Preprocessing the demo encoder expects (direct resize to 128, antialiased bilinear, [-1,1]).
embed::PreprocessParams demo_encoder_preprocess();

// Builds the module (renders and embeds a training world of 1600 images to fit the detectors:
// a few seconds) and saves it to model_path, with its preprocessing JSON at json_path.
void write_demo_encoder(const std::string& model_path, const std::string& json_path, int workers = 0);

}  // namespace cl::demo
