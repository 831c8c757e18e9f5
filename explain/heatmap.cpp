// Concept heatmaps (see heatmap.h): grids from patch activations, bilinear placement onto the
// original image through the crop box, inferno overlays and montages with a colour bar.
#include "explain/heatmap.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>

#include "core/error.h"
#include "explain/plot.h"

namespace cl::explain {

void validate(const HeatmapParams& p) {
  if (!(p.opacity >= 0 && p.opacity <= 1)) throw_usage("heatmap opacity {}: expected 0..1", p.opacity);
  if (!(p.vmax >= 0) || !std::isfinite(p.vmax)) throw_usage("heatmap vmax {}: expected >= 0 (0 = automatic)", p.vmax);
  if (p.tile_px < 32 || p.tile_px > 2048) throw_usage("heatmap tile_px {}: expected 32..2048", p.tile_px);
  if (p.cols < 1) throw_usage("heatmap cols {}: expected >= 1", p.cols);
}

std::vector<float> latent_grid(const CsrMatrix& rows, int64_t latent) {
  return weighted_grid(rows, {{latent, 1.0}});
}

std::vector<float> weighted_grid(const CsrMatrix& rows, const std::vector<std::pair<int64_t, double>>& weights) {
  std::vector<float> grid(static_cast<size_t>(rows.n_rows), 0.0f);
  for (int64_t p = 0; p < rows.n_rows; ++p) {
    double v = 0;
    for (const auto [col, value] : rows.row(p))
      for (const auto& [latent, w] : weights)
        if (col == latent) v += w * value;
    grid[static_cast<size_t>(p)] = static_cast<float>(v);
  }
  return grid;
}

cv::Mat heatmap_on_image(const std::vector<float>& grid, const PatchGeometry& g, int64_t image) {
  CL_ASSERT(static_cast<int64_t>(grid.size()) == g.patches(), "heatmap_on_image: grid size != patches");
  const int W = g.image_size[image * 2], H = g.image_size[image * 2 + 1];
  const float* b = g.crop_box.data() + image * 4;
  cv::Mat map(H, W, CV_32F, cv::Scalar(0));
  const int x0 = std::clamp(static_cast<int>(std::lround(b[0])), 0, W - 1),
            y0 = std::clamp(static_cast<int>(std::lround(b[1])), 0, H - 1);
  const int x1 = std::clamp(static_cast<int>(std::lround(b[2])), x0 + 1, W),
            y1 = std::clamp(static_cast<int>(std::lround(b[3])), y0 + 1, H);
  cv::Mat cells(static_cast<int>(g.grid_h), static_cast<int>(g.grid_w), CV_32F, const_cast<float*>(grid.data()));
  cv::Mat up;
  // OpenCV's bilinear resize maps pixel centres (half-pixel convention): each cell's centre keeps
  // the cell's value, and values blend between neighbouring centres.
  cv::resize(cells, up, cv::Size(x1 - x0, y1 - y0), 0, 0, cv::INTER_LINEAR);
  up.copyTo(map(cv::Rect(x0, y0, x1 - x0, y1 - y0)));
  return map;
}

cv::Mat overlay_heatmap(const cv::Mat& bgr, const cv::Mat& map, double vmax, double opacity) {
  CL_ASSERT(map.type() == CV_32F, "overlay_heatmap: map must be CV_32F");
  cv::Mat base;
  if (bgr.empty()) base = cv::Mat(map.rows, map.cols, CV_8UC3, cv::Scalar(90, 90, 90));
  else if (bgr.size() != map.size()) cv::resize(bgr, base, map.size(), 0, 0, cv::INTER_AREA);
  else base = bgr.clone();
  if (base.channels() == 1) cv::cvtColor(base, base, cv::COLOR_GRAY2BGR);
  cv::Mat unit;
  map.convertTo(unit, CV_32F, vmax > 0 ? 1.0 / vmax : 0.0);
  cv::min(cv::max(unit, 0.0), 1.0, unit);
  cv::Mat u8, colour;
  unit.convertTo(u8, CV_8U, 255.0);
  cv::applyColorMap(u8, colour, cv::COLORMAP_INFERNO);
  cv::Mat out(base.size(), CV_8UC3);
  for (int y = 0; y < base.rows; ++y) {
    const auto* s = base.ptr<cv::Vec3b>(y);
    const auto* c = colour.ptr<cv::Vec3b>(y);
    const float* a = unit.ptr<float>(y);
    auto* o = out.ptr<cv::Vec3b>(y);
    for (int x = 0; x < base.cols; ++x) {
      const float alpha = static_cast<float>(opacity) * a[x];
      for (int k = 0; k < 3; ++k) o[x][k] = cv::saturate_cast<uint8_t>((1 - alpha) * s[x][k] + alpha * c[x][k]);
    }
  }
  return out;
}

PatchHit hottest_patch(const CsrMatrix& rows, int64_t latent) {
  PatchHit hit;
  for (int64_t p = 0; p < rows.n_rows; ++p)
    for (const auto [col, value] : rows.row(p))
      if (col == latent && value > 0 && (hit.patch < 0 || value > hit.value)) {
        hit.patch = p;
        hit.value = value;
      }
  return hit;
}

std::vector<PatchHit> top_images_by_patch(const ActivationsReader& r, const PatchGeometry& g, int64_t latent,
                                          int64_t n) {
  if (latent < 0 || latent >= r.n_latents())
    throw_usage("latent {}: {} has latents 0..{}", latent, r.path(), r.n_latents() - 1);
  const int64_t P = g.patches(), n_images = g.n_images();
  const int64_t per_chunk = std::max<int64_t>(1, 65536 / P);
  std::vector<PatchHit> hits;
  for (int64_t i0 = 0; i0 < n_images; i0 += per_chunk) {
    const int64_t m = std::min(per_chunk, n_images - i0);
    const CsrMatrix chunk = r.read_rows(i0 * P, m * P);
    for (int64_t i = 0; i < m; ++i) {
      PatchHit h = hottest_patch(chunk.slice_rows(i * P, P), latent);
      if (h.patch < 0) continue;
      h.image = i0 + i;
      hits.push_back(h);
    }
  }
  std::stable_sort(hits.begin(), hits.end(), [](const PatchHit& a, const PatchHit& b) { return a.value > b.value; });
  if (static_cast<int64_t>(hits.size()) > n) hits.resize(static_cast<size_t>(n));
  return hits;
}

PatchMaps::PatchMaps(const std::string& path) : reader_(path) {
  auto g = reader_.patches();
  if (!g)
    throw_input("{}: image activations, expected patch activations (sae encode on a patch-embeddings file with "
                "--patch-out)", path);
  geometry_ = std::move(*g);
  for (int64_t i = 0; i < geometry_.n_images(); ++i) image_of_.emplace(geometry_.image_ids[i], i);
}

int64_t PatchMaps::image_of(const std::string& id) const {
  const auto it = image_of_.find(id);
  return it == image_of_.end() ? -1 : it->second;
}

CsrMatrix PatchMaps::image_rows(int64_t image) const {
  const int64_t P = geometry_.patches();
  return reader_.read_rows(image * P, P);
}

cv::Mat PatchMaps::map(const std::string& id, int64_t latent) const {
  const int64_t i = image_of(id);
  if (i < 0) return {};
  return heatmap_on_image(latent_grid(image_rows(i), latent), geometry_, i);
}

PatchHit PatchMaps::peak(const std::string& id, int64_t latent) const {
  const int64_t i = image_of(id);
  if (i < 0) return {};
  PatchHit h = hottest_patch(image_rows(i), latent);
  h.image = i;
  return h;
}

std::string patch_activations_for(const std::string& activations_path) {
  try {
    const std::string p = ActivationsReader(activations_path).config().value("patch_activations", std::string());
    if (p.empty()) return "";
    if (std::filesystem::exists(p)) return p;
    // A relative path written from another folder: beside the activations.
    const auto beside = std::filesystem::path(activations_path).parent_path() / std::filesystem::path(p).filename();
    return std::filesystem::exists(beside) ? beside.string() : "";
  } catch (const InputError&) {
    return "";
  }
}

std::string describe_patch(const PatchGeometry& g, int64_t image, int64_t patch) {
  const Box b = patch_box(g, image, patch);
  return fmt::format("cell ({}, {}), box [{:.0f}, {:.0f}, {:.0f}, {:.0f}]", patch / g.grid_w, patch % g.grid_w, b.x0, b.y0,
                     b.x1, b.y1);
}

int64_t patch_at(const PatchGeometry& g, int64_t image, double x, double y) {
  // Through patch_box, so a click and a listing agree with the boxes describe_patch prints.
  for (int64_t p = 0; p < g.patches(); ++p) {
    const Box b = patch_box(g, image, p);
    if (x >= b.x0 && x < b.x1 && y >= b.y0 && y < b.y1) return p;
  }
  return -1;
}

std::vector<std::pair<int64_t, float>> latents_in_patch(const CsrMatrix& rows, int64_t patch, int64_t top) {
  CL_ASSERT(patch >= 0 && patch < rows.n_rows, "latents_in_patch: patch out of range");
  std::vector<std::pair<int64_t, float>> out;
  for (const auto [col, value] : rows.row(patch))
    if (value > 0) out.emplace_back(col, value);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (static_cast<int64_t>(out.size()) > top) out.resize(static_cast<size_t>(std::max<int64_t>(0, top)));
  return out;
}

double write_heatmap_montage(const std::string& path, const std::string& title, const std::vector<HeatmapTile>& tiles,
                             const HeatmapParams& p, const std::vector<std::string>& inputs) {
  validate(p);
  double vmax = p.vmax;
  if (vmax <= 0)
    for (const auto& t : tiles) {
      double mx = 0;
      if (!t.map.empty()) cv::minMaxLoc(t.map, nullptr, &mx);
      vmax = std::max(vmax, mx);
    }
  std::vector<Tile> drawn;
  for (const auto& t : tiles)
    drawn.push_back({t.map.empty() ? t.bgr : overlay_heatmap(t.bgr, t.map, vmax, p.opacity), t.caption});
  cv::Mat img = render_montage(title, drawn, p.cols, p.tile_px);
  // The colour bar: [0, vmax] left to right, under the tiles.
  const int bar_h = 14, pad = 8, label_h = 22, bar_w = std::min(img.cols - 2 * pad, 360);
  cv::Mat out(img.rows + bar_h + label_h + pad, img.cols, CV_8UC3, cv::Scalar(255, 255, 255));
  img.copyTo(out(cv::Rect(0, 0, img.cols, img.rows)));
  cv::Mat ramp(1, bar_w, CV_8U);
  for (int x = 0; x < bar_w; ++x) ramp.at<uint8_t>(0, x) = static_cast<uint8_t>(255.0 * x / std::max(1, bar_w - 1));
  cv::Mat ramp_colour;
  cv::applyColorMap(ramp, ramp_colour, cv::COLORMAP_INFERNO);
  cv::resize(ramp_colour, ramp_colour, cv::Size(bar_w, bar_h), 0, 0, cv::INTER_NEAREST);
  ramp_colour.copyTo(out(cv::Rect(pad, img.rows, bar_w, bar_h)));
  const cv::Scalar ink(40, 40, 40);
  cv::putText(out, "0", {pad, img.rows + bar_h + 16}, cv::FONT_HERSHEY_SIMPLEX, 0.4, ink, 1, cv::LINE_AA);
  const std::string top = fmt::format("{:.3g}", vmax);
  int base = 0;
  const int top_w = cv::getTextSize(top, cv::FONT_HERSHEY_SIMPLEX, 0.4, 1, &base).width;
  cv::putText(out, top, {pad + bar_w - top_w, img.rows + bar_h + 16}, cv::FONT_HERSHEY_SIMPLEX, 0.4, ink, 1,
              cv::LINE_AA);
  cv::putText(out, "activation", {pad + bar_w / 2 - 28, img.rows + bar_h + 16}, cv::FONT_HERSHEY_SIMPLEX, 0.4, ink, 1,
              cv::LINE_AA);
  write_png(path, out, inputs);
  return vmax;
}

}  // namespace cl::explain
