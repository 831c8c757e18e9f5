// Concept heatmaps: where on an image a latent fires. A latent's activations on an image's patch
// grid (patch activations, core/patches.h) are upsampled bilinearly onto the crop box the model
// saw, so the map is in the original image's pixels, and drawn over the image with a colour scale.
// The CLI (`explain heatmap`), retrieval montages, the pipeline's report and the viewer draw
// through these functions.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "core/activations.h"
#include "core/patches.h"
#include "core/sparse.h"

namespace cl::explain {

// Member initializers are the defaults.
struct HeatmapParams {
  double opacity = 0.6;  // overlay opacity at the top of the colour scale (0..1)
  double vmax = 0;       // the colour scale's top; 0 = the largest value among the images drawn
  int tile_px = 224;     // montage tile side
  int cols = 4;          // montage columns
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HeatmapParams, opacity, vmax, tile_px, cols)
void validate(const HeatmapParams& p);

// One image's patch rows (P rows, row-major grid) -> the latent's value per patch [P]; with
// weights, sum_l w_l * a_l over several latents (a concept-attribution map).
std::vector<float> latent_grid(const CsrMatrix& image_rows, int64_t latent);
std::vector<float> weighted_grid(const CsrMatrix& image_rows, const std::vector<std::pair<int64_t, double>>& weights);

// The grid on the original image: CV_32F [height, width], bilinear inside the crop box (cell
// centres keep their cell's value), 0 outside it.
cv::Mat heatmap_on_image(const std::vector<float>& grid, const PatchGeometry& g, int64_t image);

// The image (BGR, any size; resized to the map) under the map coloured by map / vmax (inferno),
// each pixel blended with alpha = opacity * clamp(map / vmax, 0, 1).
cv::Mat overlay_heatmap(const cv::Mat& bgr, const cv::Mat& map, double vmax, double opacity);

// Where a latent is largest in an image: patch -1 (value 0) when it never fires there.
struct PatchHit {
  int64_t image = -1, patch = -1;
  float value = 0;
};
PatchHit hottest_patch(const CsrMatrix& image_rows, int64_t latent);
// The n images whose largest patch activation of the latent is highest (images where it fires;
// ties by image order). Streams the file in chunks of images.
std::vector<PatchHit> top_images_by_patch(const ActivationsReader& patch_acts, const PatchGeometry& g, int64_t latent,
                                          int64_t n);

// Patch activations opened once for drawing and locating latents by image id.
class PatchMaps {
 public:
  // InputError naming the file when it holds image activations (no patch grid).
  explicit PatchMaps(const std::string& patch_acts_path);
  const ActivationsReader& reader() const { return reader_; }
  const PatchGeometry& geometry() const { return geometry_; }
  int64_t image_of(const std::string& id) const;  // -1 when the file lacks the image
  CsrMatrix image_rows(int64_t image) const;      // its P patch rows
  // heatmap_on_image of the latent on the image; an empty Mat when the file lacks it.
  cv::Mat map(const std::string& id, int64_t latent) const;
  // Where the latent peaks on the image (PatchHit.patch -1: it does not fire, or no such image).
  PatchHit peak(const std::string& id, int64_t latent) const;

 private:
  ActivationsReader reader_;
  PatchGeometry geometry_;
  std::unordered_map<std::string, int64_t> image_of_;
};
// The patch activations written with image activations (their config's "patch_activations"),
// when that file exists; "" otherwise.
std::string patch_activations_for(const std::string& activations_path);
// "cell (r, c), box [x0, y0, x1, y1]" of a patch, for listings.
std::string describe_patch(const PatchGeometry& g, int64_t image, int64_t patch);
// The patch whose box (patch_box) holds the original-image pixel position (x, y); -1 outside the
// crop box (the part of the image the model never saw).
int64_t patch_at(const PatchGeometry& g, int64_t image, double x, double y);
// The latents firing in one patch of an image's patch rows, largest activation first (ties: lower
// latent first), at most top.
std::vector<std::pair<int64_t, float>> latents_in_patch(const CsrMatrix& image_rows, int64_t patch, int64_t top);

struct HeatmapTile {
  std::string caption;  // drawn under the tile ('\n' for a second line)
  cv::Mat bgr;          // the original image (empty: drawn as missing)
  cv::Mat map;          // heatmap_on_image of it
};
// A montage of overlays with a colour bar for [0, vmax] under it; returns the vmax used.
double write_heatmap_montage(const std::string& path, const std::string& title, const std::vector<HeatmapTile>& tiles,
                             const HeatmapParams& p, const std::vector<std::string>& inputs = {});

}  // namespace cl::explain
