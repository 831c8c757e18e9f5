// Latent statistics and the inverted index (which images each latent fires on, strongest first),
// computed in one pass over the column-major view of the activations, and retrieval from them:
// the top images of a latent, the top latents of an image.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/latent_index.h"
#include "core/progress.h"
#include "core/sparse.h"

namespace cl::explain {

struct StatsParams {
  int n_bins = 32;  // log-spaced histogram bins between the smallest and largest positive activation
  std::vector<double> quantile_levels = {0.5, 0.9, 0.99};  // of each latent's non-zero activations
  int threads = 0;  // 0 = all cores
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(StatsParams, n_bins, quantile_levels, threads)
void validate(const StatsParams& p);  // UsageError on n_bins < 1, levels outside [0, 1], threads < 0

// acts_nl [n_images, n_latents] -> statistics and the inverted index (index.config is left for the
// caller to fill with provenance).
LatentIndex build_index(const CsrMatrix& acts_nl, const StatsParams& p = {},
                        ProgressSink& progress = silent_progress());

struct Hit {
  int64_t row = -1;   // image row (latent retrieval) or latent (image retrieval)
  float value = 0;    // activation
};

// The images where `latent` fires most strongly, highest first, ties by row; at most `top`.
std::vector<Hit> top_images(const LatentIndex& idx, int64_t latent, int64_t top);
// The latents most active on image `row` of acts_nl, highest first, ties by latent; at most `top`.
std::vector<Hit> top_latents(const CsrMatrix& acts_nl, int64_t row, int64_t top);

}  // namespace cl::explain
