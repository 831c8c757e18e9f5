// The latent browser's rows: text search over names (and "#12" / "12" for a latent index),
// filters and a stable sort on any column, returned as the visible latent order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "viewer/model/workspace_model.h"

namespace cl::viewer {

enum class LatentColumn { latent, name, origin, score, firing_rate, mean, max, weight, rank };

struct LatentFilter {
  std::string query;            // case-insensitive substring of the name, or a latent index
  bool named_only = false;
  bool used_only = false;       // CBM weight != 0
  bool hide_dead = false;       // never fires
  LatentColumn sort = LatentColumn::rank;
  bool ascending = true;
  int weight_class = -1;        // sort by this class's weight (-1: largest |weight|)
};

// Latent indices to show, in order. Rank sorts unused latents (rank 0) last.
std::vector<int64_t> filter_latents(const std::vector<LatentRow>& rows, const LatentFilter& f);

// The weight a row's table cell shows: binary models the positive class's, else the largest
// |class weight|, signed (0 without a CBM).
double max_weight(const LatentRow& r);

}  // namespace cl::viewer
