// Pointing game and patch AUROC of concept latents against masks (see localize.h).
#include "explain/localize.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/ranges.h>

#include "cbm/metrics.h"
#include "core/error.h"
#include "core/random.h"
#include "explain/heatmap.h"

namespace cl::explain {

void validate(const LocalizeParams& p) {
  if (p.random_latents < 0) throw_usage("localize random_latents {}: expected >= 0", p.random_latents);
}

nlohmann::json to_json(const LocalizeRow& r) {
  auto num = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
  return {{"concept", r.concept_name},     {"latent", r.latent},
          {"n_images", r.n_images},        {"n_patches_pos", r.n_patches_pos},
          {"n_patches", r.n_patches},      {"pointing", num(r.pointing)},
          {"patch_auroc", num(r.patch_auroc)}, {"control_pointing", num(r.control_pointing)},
          {"control_auroc", num(r.control_auroc)}};
}

bool patch_in_mask(const cv::Mat& mask, const Box& box) {
  if (mask.empty()) return false;
  const int x0 = std::clamp(static_cast<int>(std::floor(box.x0)), 0, mask.cols),
            x1 = std::clamp(static_cast<int>(std::ceil(box.x1)), 0, mask.cols);
  const int y0 = std::clamp(static_cast<int>(std::floor(box.y0)), 0, mask.rows),
            y1 = std::clamp(static_cast<int>(std::ceil(box.y1)), 0, mask.rows);
  if (x1 <= x0 || y1 <= y0) return false;
  double mx = 0;
  cv::minMaxLoc(mask(cv::Rect(x0, y0, x1 - x0, y1 - y0)), nullptr, &mx);
  return mx >= 128;
}

namespace {

// Per scored latent: pointing hits and the patch scores (labels shared per concept).
struct Tally {
  int64_t hits = 0;
  std::vector<double> scores;
};

}  // namespace

std::vector<LocalizeRow> localize(const ActivationsReader& r, const PatchGeometry& g, const MaskSource& masks,
                                  const std::vector<std::pair<std::string, int64_t>>& latents, const LocalizeParams& p) {
  validate(p);
  const auto known = masks.concepts();
  for (const auto& [c, l] : latents) {
    if (std::find(known.begin(), known.end(), c) == known.end())
      throw_input("{}: no masks for concept '{}' (it has: {})", masks.path(), c, fmt::join(known, ", "));
    if (l < 0 || l >= r.n_latents()) throw_usage("localize: latent {} for '{}': {} has latents 0..{}", l, c, r.path(), r.n_latents() - 1);
  }
  const int64_t P = g.patches(), n_images = g.n_images(), L = r.n_latents();
  // Per concept: its latent, then its random control latents (seeded per concept, never its own).
  std::vector<std::vector<int64_t>> scored(latents.size());
  for (size_t c = 0; c < latents.size(); ++c) {
    scored[c].push_back(latents[c].second);
    Rng rng(splitmix64(p.seed + c));
    while (L > 1 && static_cast<int>(scored[c].size()) < 1 + p.random_latents) {
      const auto l = static_cast<int64_t>(rng.below(static_cast<uint64_t>(L)));
      if (l != latents[c].second) scored[c].push_back(l);
    }
  }
  std::vector<std::vector<Tally>> tally(latents.size());
  std::vector<std::vector<int>> labels(latents.size());
  std::vector<int64_t> n_with(latents.size(), 0);
  for (size_t c = 0; c < latents.size(); ++c) tally[c].resize(scored[c].size());
  for (int64_t i = 0; i < n_images; ++i) {
    const CsrMatrix rows = r.read_rows(i * P, P);
    const int w = g.image_size[i * 2], h = g.image_size[i * 2 + 1];
    for (size_t c = 0; c < latents.size(); ++c) {
      const cv::Mat mask = masks.mask(latents[c].first, g.image_ids[i], w, h);
      std::vector<char> in(static_cast<size_t>(P));
      for (int64_t q = 0; q < P; ++q) {
        in[q] = patch_in_mask(mask, patch_box(g, i, q));
        labels[c].push_back(in[q]);
      }
      if (!mask.empty()) ++n_with[c];
      for (size_t s = 0; s < scored[c].size(); ++s) {
        const auto grid = latent_grid(rows, scored[c][s]);
        tally[c][s].scores.insert(tally[c][s].scores.end(), grid.begin(), grid.end());
        if (mask.empty()) continue;
        const PatchHit hit = hottest_patch(rows, scored[c][s]);
        if (hit.patch >= 0 && in[hit.patch]) ++tally[c][s].hits;
      }
    }
  }
  std::vector<LocalizeRow> out;
  for (size_t c = 0; c < latents.size(); ++c) {
    LocalizeRow row;
    row.concept_name = latents[c].first;
    row.latent = latents[c].second;
    row.n_images = n_with[c];
    row.n_patches = static_cast<int64_t>(labels[c].size());
    row.n_patches_pos = std::count(labels[c].begin(), labels[c].end(), 1);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    auto pointing = [&](const Tally& t) { return n_with[c] ? static_cast<double>(t.hits) / n_with[c] : nan; };
    row.pointing = pointing(tally[c][0]);
    row.patch_auroc = cbm::auroc(tally[c][0].scores, labels[c]);
    double cp = 0, ca = 0;
    int n_ca = 0;
    for (size_t s = 1; s < tally[c].size(); ++s) {
      cp += pointing(tally[c][s]);
      const double a = cbm::auroc(tally[c][s].scores, labels[c]);
      if (!std::isnan(a)) ca += a, ++n_ca;
    }
    const auto n_ctl = static_cast<double>(tally[c].size() - 1);
    row.control_pointing = n_ctl > 0 ? cp / n_ctl : nan;
    row.control_auroc = n_ca > 0 ? ca / n_ca : nan;
    out.push_back(row);
  }
  return out;
}

}  // namespace cl::explain
