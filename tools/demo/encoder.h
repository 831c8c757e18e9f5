// The frozen demo encoder: a TorchScript module with deterministic, designed weights (colour
// prototypes, oriented ridge and spot filters, edge and corner energy, pooled globally and on a
// 3x3 grid, then mixed by a fixed random projection). A stand-in for a foundation model: its
// embeddings linearly carry every demo concept, but no single dimension is a concept.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "tools/embed/preprocess.h"

namespace cl::demo {

inline constexpr int kDemoEncoderInput = 128;  // model input side (images are resized to this)
inline constexpr int kDemoEncoderDim = 512;    // embedding dimension

// Preprocessing the demo encoder expects (direct resize to 128, antialiased bilinear, [-1,1]).
embed::PreprocessParams demo_encoder_preprocess();

// Builds the module and saves it to model_path, with its preprocessing JSON at json_path.
void write_demo_encoder(const std::string& model_path, const std::string& json_path);

}  // namespace cl::demo
