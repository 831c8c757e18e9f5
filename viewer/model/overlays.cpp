// Heatmap overlays for the viewer (see overlays.h): which grid to draw for a row, drawn through
// explain/heatmap.h.
#include "viewer/model/overlays.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>

#include "core/error.h"
#include "explain/contrib.h"
#include "explain/heatmap.h"

namespace cl::viewer {

namespace {

std::vector<std::pair<int64_t, double>> weights_for_rows(const WorkspaceModel& m, int64_t row,
                                                         const CsrMatrix& patch_rows) {
  std::vector<std::pair<int64_t, double>> out;
  if (!m.has_cbm() || row < 0 || row >= m.n_images()) return out;
  // The class the image panel explains, from the same local explanation it lists.
  std::vector<double> proba;
  for (const auto& c : explain::local_explanation(m.cbm, m.classes(), m.acts.acts, row)) proba.push_back(c.probability);
  const int k = logit_class(proba);
  // Only the latents firing in the patches: the others add 0 to every cell, and weighted_grid
  // costs per (entry, weight).
  std::set<int64_t> firing;
  for (int64_t p = 0; p < patch_rows.n_rows; ++p)
    for (const auto [j, v] : patch_rows.row(p))
      if (v != 0) firing.insert(j);
  for (const int64_t j : firing)
    if (const double w = explain::class_weight(m.cbm, k, j); w != 0) out.emplace_back(j, w);
  return out;
}

// The overlay's grid for a row ([P], row-major) and the row's image in the patch file; an empty
// grid when there is nothing to draw.
std::vector<float> overlay_grid(const WorkspaceModel& m, int64_t row, const OverlaySpec& s, int64_t& image) {
  image = m.patch_image(row);
  if (image < 0) return {};
  if (s.kind == OverlayKind::latent && (s.latent < 0 || s.latent >= m.n_latents())) return {};
  if (s.kind == OverlayKind::attribution && !m.has_cbm()) return {};
  const CsrMatrix rows = m.patch_maps->image_rows(image);
  if (s.kind == OverlayKind::latent) return explain::latent_grid(rows, s.latent);
  return explain::weighted_grid(rows, weights_for_rows(m, row, rows));
}

}  // namespace

const char* overlay_kind_name(OverlayKind k) {
  const auto i = static_cast<size_t>(k);
  CL_ASSERT(i < kOverlayKindNames.size(), "an OverlayKind without a name");
  return kOverlayKindNames[i];
}

std::optional<OverlayKind> parse_overlay_kind(const std::string& s) {
  for (size_t i = 0; i < kOverlayKindNames.size(); ++i)
    if (s == kOverlayKindNames[i]) return static_cast<OverlayKind>(i);
  return std::nullopt;
}

double default_overlay_opacity() { return explain::HeatmapParams{}.opacity; }

std::vector<std::pair<int64_t, double>> attribution_weights(const WorkspaceModel& m, int64_t row) {
  const int64_t image = m.patch_image(row);
  if (image < 0) return {};
  return weights_for_rows(m, row, m.patch_maps->image_rows(image));
}

cv::Mat overlay_map(const WorkspaceModel& m, int64_t row, const OverlaySpec& s) {
  int64_t image = -1;
  const std::vector<float> grid = overlay_grid(m, row, s, image);
  if (grid.empty()) return {};
  return explain::heatmap_on_image(grid, m.patch_maps->geometry(), image);
}

double overlay_vmax(const cv::Mat& map) {
  if (map.empty()) return 0;
  double mx = 0;
  cv::minMaxLoc(map, nullptr, &mx);
  return std::max(mx, 0.0);
}

Thumbnail overlay_thumbnail(const WorkspaceModel& m, int64_t row, const OverlaySpec& s, int size) {
  const std::string path = m.image_path(row);
  int64_t image = -1;
  const std::vector<float> grid = overlay_grid(m, row, s, image);
  if (grid.empty()) return decode_thumbnail(path, size);
  const PatchGeometry& g = m.patch_maps->geometry();
  const int W = g.image_size[static_cast<size_t>(image * 2)], H = g.image_size[static_cast<size_t>(image * 2 + 1)];
  const double scale = std::min(1.0, double(size) / double(std::max(W, H)));
  // This image's geometry at the thumbnail's scale, rounded as decode_thumbnail rounds its size.
  PatchGeometry one;
  one.grid_h = g.grid_h, one.grid_w = g.grid_w;
  one.image_ids = {g.image_ids[static_cast<size_t>(image)]};
  one.image_size = {std::max(1, int(W * scale + 0.5)), std::max(1, int(H * scale + 0.5))};
  for (int k = 0; k < 4; ++k)
    one.crop_box.push_back(static_cast<float>(g.crop_box[static_cast<size_t>(image * 4 + k)] * scale));
  const cv::Mat map = explain::heatmap_on_image(grid, one, 0);
  cv::Mat bgr;
  if (!path.empty()) bgr = cv::imread(path, cv::IMREAD_COLOR);
  return thumbnail_of(path, explain::overlay_heatmap(bgr, map, overlay_vmax(map), s.opacity), size);
}

std::string overlay_key(int64_t row, const OverlaySpec& s) {
  return fmt::format("overlay:{}:{}:{}:{}", overlay_kind_name(s.kind), s.kind == OverlayKind::latent ? s.latent : -1,
                     std::lround(s.opacity * 100), row);
}

PatchListing latents_at(const WorkspaceModel& m, int64_t row, double x, double y, int64_t top) {
  PatchListing l;
  l.row = row;
  const int64_t image = m.patch_image(row);
  if (image < 0) return l;
  const PatchGeometry& g = m.patch_maps->geometry();
  l.patch = explain::patch_at(g, image, x, y);
  if (l.patch < 0) return l;
  l.where = explain::describe_patch(g, image, l.patch);
  l.box = patch_box(g, image, l.patch);
  l.latents = explain::latents_in_patch(m.patch_maps->image_rows(image), l.patch, top);
  return l;
}

std::pair<int, int> patch_image_size(const WorkspaceModel& m, int64_t row) {
  const int64_t image = m.patch_image(row);
  if (image < 0) return {0, 0};
  const auto& size = m.patch_maps->geometry().image_size;
  return {size[static_cast<size_t>(image * 2)], size[static_cast<size_t>(image * 2 + 1)]};
}

}  // namespace cl::viewer
