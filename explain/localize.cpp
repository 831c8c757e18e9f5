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
          {"control_auroc", num(r.control_auroc)}, {"n_controls", r.n_controls}};
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
  // The control: one set of random latents for every concept, drawn (seeded) among the latents
  // that fire somewhere in the file and are no concept's latent. A dead latent never points
  // anywhere, so drawing among all latents would make any latent look good next to it.
  std::vector<char> alive(static_cast<size_t>(L), 0), is_concept(static_cast<size_t>(L), 0);
  for (const auto& [c, l] : latents) is_concept[static_cast<size_t>(l)] = 1;
  constexpr int64_t kImagesPerRead = 256;
  for (int64_t i = 0; i < n_images; i += kImagesPerRead) {
    const CsrMatrix rows = r.read_rows(i * P, std::min(kImagesPerRead, n_images - i) * P);
    for (size_t k = 0; k < rows.indices.size(); ++k)
      if (rows.values[k] > 0) alive[static_cast<size_t>(rows.indices[k])] = 1;
  }
  std::vector<int64_t> pool;
  for (int64_t l = 0; l < L; ++l)
    if (alive[static_cast<size_t>(l)] && !is_concept[static_cast<size_t>(l)]) pool.push_back(l);
  Rng rng(splitmix64(p.seed));
  std::vector<int64_t> controls;
  for (int s = 0; s < p.random_latents && !pool.empty(); ++s) {  // without replacement
    const auto j = static_cast<size_t>(rng.below(static_cast<uint64_t>(pool.size())));
    controls.push_back(pool[j]);
    pool[j] = pool.back();
    pool.pop_back();
  }
  // Scored latents: the concepts' (deduplicated), then the controls; patch scores kept as float
  // (one [images x patches] vector per scored latent) and labels per concept.
  std::vector<int64_t> scored;
  for (const auto& [c, l] : latents)
    if (std::find(scored.begin(), scored.end(), l) == scored.end()) scored.push_back(l);
  const size_t n_concept_latents = scored.size();
  scored.insert(scored.end(), controls.begin(), controls.end());
  std::vector<std::vector<float>> scores(scored.size());
  std::vector<std::vector<int>> labels(latents.size());
  std::vector<std::vector<int64_t>> hits(latents.size(), std::vector<int64_t>(scored.size(), 0));
  std::vector<int64_t> n_with(latents.size(), 0);
  for (int64_t i = 0; i < n_images; ++i) {
    const CsrMatrix rows = r.read_rows(i * P, P);
    std::vector<PatchHit> peak(scored.size());
    for (size_t s = 0; s < scored.size(); ++s) {
      const auto grid = latent_grid(rows, scored[s]);
      scores[s].insert(scores[s].end(), grid.begin(), grid.end());
      peak[s] = hottest_patch(rows, scored[s]);
    }
    const int w = g.image_size[i * 2], h = g.image_size[i * 2 + 1];
    for (size_t c = 0; c < latents.size(); ++c) {
      const cv::Mat mask = masks.mask(latents[c].first, g.image_ids[i], w, h);
      std::vector<char> in(static_cast<size_t>(P));
      for (int64_t q = 0; q < P; ++q) {
        in[q] = patch_in_mask(mask, patch_box(g, i, q));
        labels[c].push_back(in[q]);
      }
      if (mask.empty()) continue;
      ++n_with[c];
      for (size_t s = 0; s < scored.size(); ++s)
        if (peak[s].patch >= 0 && in[peak[s].patch]) ++hits[c][s];
    }
  }
  auto auroc_of = [&](size_t s, size_t c) {
    return cbm::auroc(std::vector<double>(scores[s].begin(), scores[s].end()), labels[c]);
  };
  std::vector<LocalizeRow> out;
  for (size_t c = 0; c < latents.size(); ++c) {
    LocalizeRow row;
    row.concept_name = latents[c].first;
    row.latent = latents[c].second;
    row.n_images = n_with[c];
    row.n_patches = static_cast<int64_t>(labels[c].size());
    row.n_patches_pos = std::count(labels[c].begin(), labels[c].end(), 1);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    auto pointing = [&](size_t s) { return n_with[c] ? static_cast<double>(hits[c][s]) / n_with[c] : nan; };
    const auto own = static_cast<size_t>(std::find(scored.begin(), scored.end(), row.latent) - scored.begin());
    row.pointing = pointing(own);
    row.patch_auroc = auroc_of(own, c);
    double cp = 0, ca = 0;
    int n_ca = 0;
    for (size_t s = n_concept_latents; s < scored.size(); ++s) {
      cp += pointing(s);
      const double a = auroc_of(s, c);
      if (!std::isnan(a)) ca += a, ++n_ca;
    }
    row.n_controls = static_cast<int64_t>(controls.size());
    row.control_pointing = controls.empty() ? nan : cp / static_cast<double>(controls.size());
    row.control_auroc = n_ca > 0 ? ca / n_ca : nan;
    out.push_back(row);
  }
  return out;
}

}  // namespace cl::explain
