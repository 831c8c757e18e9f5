// Query by example: an image file the workspace has never seen, embedded with the workspace's
// encoder, encoded with its SAE, and compared with every image by activation cosine.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/progress.h"
#include "viewer/model/workspace_model.h"

namespace cl::viewer {

struct QueryResult {
  std::string image_path;
  std::vector<std::pair<int64_t, float>> latents;   // its code, strongest first
  std::vector<std::pair<int64_t, double>> nearest;  // (acts row, cosine), best first
  std::vector<double> proba;                         // CBM probabilities ("" without a CBM)
  double seconds = 0;
};

// InputError naming the file at fault (no encoder in the workspace, unreadable image, a
// dimension that does not match the SAE).
QueryResult query_by_example(const WorkspaceModel& m, const std::string& image_path, Device device,
                             ProgressSink& progress = silent_progress());

}  // namespace cl::viewer
