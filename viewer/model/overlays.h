// Heatmap overlays on the workspace's images, from its patch activations: where one latent fires
// on an image, or where the concept bottleneck's class logit gets its evidence (the attribution
// map: sum over latents of weight x patch activation, the weights of the logit the image panel's
// contributions explain). explain/heatmap.h places and colours them; these functions pick what to
// draw for an activations row. The panels compute them on the thumbnail threads and cache the
// pictures as textures by overlay_key(), so the frame loop only draws; the CLI and tests can call
// every function here.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/patches.h"
#include "viewer/model/thumbnails.h"
#include "viewer/model/workspace_model.h"

namespace cl::viewer {

enum class OverlayKind { latent, attribution };
// The one name table, in enum order (--overlay, keys).
inline constexpr std::array<const char*, 2> kOverlayKindNames = {"latent", "attribution"};
static_assert(static_cast<size_t>(OverlayKind::attribution) + 1 == kOverlayKindNames.size(),
              "one name per OverlayKind");
const char* overlay_kind_name(OverlayKind k);
std::optional<OverlayKind> parse_overlay_kind(const std::string& s);

// explain::HeatmapParams' opacity: the viewer starts where `explain heatmap` draws.
double default_overlay_opacity();

struct OverlaySpec {
  OverlayKind kind = OverlayKind::latent;
  int64_t latent = -1;                       // kind latent: which one
  double opacity = default_overlay_opacity();  // 0..1, at the top of the colour scale
};

// The attribution map's weights for an acts row: each latent firing in the image's patches with
// its CBM weight for logit_class() of the image (explain::class_weight), zero weights left out.
// Empty without a CBM or without patches for the image.
std::vector<std::pair<int64_t, double>> attribution_weights(const WorkspaceModel& m, int64_t row);

// The overlay's map over the original image, CV_32F [height, width] (explain::heatmap_on_image of
// latent_grid or weighted_grid); empty when the patch activations lack the image, the latent is
// out of range, or (attribution) there is no CBM.
cv::Mat overlay_map(const WorkspaceModel& m, int64_t row, const OverlaySpec& s);
// The colour scale's top: the map's own largest value, so each picture shows where on its image
// (how strongly is the number beside it); 0 when nothing is positive, which draws nothing.
double overlay_vmax(const cv::Mat& map);

// The image under its overlay (explain::overlay_heatmap with overlay_vmax) as an RGBA thumbnail
// whose longer side is at most `size`. Drawn at that size: the map is placed by the same rule on
// the image's geometry scaled down, not at the original's pixels (a 4000 px photograph would cost
// ~100 ms a tile). An unreadable image file gets the map over grey; a row without patches, the
// plain thumbnail (decode_thumbnail).
Thumbnail overlay_thumbnail(const WorkspaceModel& m, int64_t row, const OverlaySpec& s, int size);
// The texture cache key: one picture per (row, latent or attribution, opacity in percent).
std::string overlay_key(int64_t row, const OverlaySpec& s);

// What fires where a click lands on an image.
struct PatchListing {
  int64_t row = -1;
  int64_t patch = -1;      // -1: outside the crop box the model saw, or no patches for the image
  std::string where;       // explain::describe_patch: "cell (r, c), box [x0, y0, x1, y1]"
  Box box;                 // the patch in the original image's pixels
  std::vector<std::pair<int64_t, float>> latents;  // firing in the patch, strongest first
};
// The patch under (x, y), in the original image's pixels, and at most `top` of its latents.
PatchListing latents_at(const WorkspaceModel& m, int64_t row, double x, double y, int64_t top = 10);
// The original image's width and height as the patch geometry records them ({0, 0}: no patches).
std::pair<int, int> patch_image_size(const WorkspaceModel& m, int64_t row);

}  // namespace cl::viewer
