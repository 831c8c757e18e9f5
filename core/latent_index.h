// The latent index format ("conceptlab.index", schema 1), stored beside an activations file so a
// viewer opens it without recomputing: per latent statistics (firing count, mean, max, quantiles
// of its non-zero activations, a histogram on shared log-spaced bins) and the inverted index,
// for every latent the images where it fires sorted by activation (highest first, ties by row).
// Layout: group `latents/` with `fire_count` int64 [L], `mean` float64 [L] (over all images),
// `mean_active` float64 [L] (over the images where it fires), `max` float32 [L], `quantiles`
// float32 [L, Q] (attribute `levels`, JSON), `hist` int64 [L, B], `hist_edges` float64 [B + 1];
// group `by_latent/` with `indptr` int64 [L + 1], `rows` int32 [nnz], `values` float32 [nnz].
// Root attributes: format, schema_version, config (JSON: the activations file, its rows,
// latents and non-zeros, the stats params), `n_rows`, `n_latents`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/formats.h"

namespace cl {

struct LatentIndex {
  int64_t n_rows = 0, n_latents = 0;
  std::vector<int64_t> fire_count;    // [L]
  std::vector<double> mean;           // [L], zeros included
  std::vector<double> mean_active;    // [L], NaN for a latent that never fires
  std::vector<float> max;             // [L], 0 for a latent that never fires
  std::vector<double> quantile_levels;
  std::vector<float> quantiles;       // [L, Q], NaN for a latent that never fires
  std::vector<double> hist_edges;     // [B + 1]
  std::vector<int64_t> hist;          // [L, B]
  std::vector<int64_t> indptr{0};     // [L + 1]
  std::vector<int32_t> rows;          // [nnz], per latent by activation descending
  std::vector<float> values;          // [nnz]
  nlohmann::json config = nlohmann::json::object();

  int64_t n_bins() const { return static_cast<int64_t>(hist_edges.size()) - 1; }
  double firing_rate(int64_t latent) const;
};

void write_latent_index(const std::string& path, const LatentIndex& idx, const std::vector<std::string>& inputs = {});
// Validates shapes and the inverted index (rows in range, values sorted descending per latent).
LatentIndex read_latent_index(const std::string& path);

}  // namespace cl
