// Heatmap overlays in the viewer's model: patch activations open with the workspace (absent: off,
// no problem; broken: a problem, the rest opens), an overlay's pixels are explain's heatmap of
// the row's patches over its image, the attribution map is the class logit's weights over the
// latent maps, a click lists the latents of the patch under it, strongest first, and the
// pictures go through the thumbnail queue under their own keys.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/activations.h"
#include "core/error.h"
#include "explain/contrib.h"
#include "explain/heatmap.h"
#include "tests/test_util.h"
#include "tests/viewer_model/fixture.h"
#include "viewer/model/overlays.h"
#include "viewer/model/workspace_model.h"

namespace fs = std::filesystem;
using namespace cl;
using namespace cl::viewer;

namespace {

constexpr int64_t kGrid = 4, kPatches = kGrid * kGrid;

// One workspace with patch activations for the cases here (the pipeline takes ~2 s); its patch
// rows as written, to check the model against.
struct PatchedWorkspace {
  test::TempDir dir;
  std::string ws;
  CsrMatrix rows;
  bool had_patches_before = true;
  size_t issues_before = 0;
};
const PatchedWorkspace& patched_workspace() {
  static PatchedWorkspace p = [] {
    PatchedWorkspace w;
    w.ws = test::make_viewer_workspace(w.dir.path.string());
    const auto m = WorkspaceModel::load(WorkspacePaths::from_workspace(w.ws));
    w.had_patches_before = m->has_patches();
    w.issues_before = m->issues.size();
    w.rows = test::write_viewer_patches(w.ws, kGrid);
    return w;
  }();
  return p;
}

// The expected overlay of a latent grid on a row's image, as RGBA bytes.
std::vector<uint8_t> expected_rgba(const WorkspaceModel& m, int64_t row, const cv::Mat& map, double opacity) {
  double vmax = 0;
  cv::minMaxLoc(map, nullptr, &vmax);
  const cv::Mat over = explain::overlay_heatmap(cv::imread(m.image_path(row), cv::IMREAD_COLOR), map, vmax, opacity);
  cv::Mat rgba;
  cv::cvtColor(over, rgba, cv::COLOR_BGR2RGBA);
  return {rgba.data, rgba.data + rgba.total() * 4};
}

}  // namespace

TEST_CASE("viewer model: overlays are explain's heatmaps of the row's patches, the attribution map the logit's weights") {
  const PatchedWorkspace& w = patched_workspace();
  CHECK_FALSE(w.had_patches_before);  // no patch file: overlays off, and no problem reported
  CHECK(w.issues_before == 0);
  const auto m = WorkspaceModel::load(WorkspacePaths::from_workspace(w.ws));
  CHECK(m->issues.empty());
  REQUIRE(m->has_patches());
  CHECK(m->paths.patch_activations == w.ws + "/activations.patches.h5");
  const PatchGeometry& g = m->patch_maps->geometry();
  CHECK(g.patches() == kPatches);

  // The default latent's strongest image.
  const int64_t l = m->default_latent();
  const auto first = static_cast<size_t>(m->index.indptr[static_cast<size_t>(l)]);
  REQUIRE(static_cast<size_t>(m->index.indptr[static_cast<size_t>(l) + 1]) > first);
  const int64_t row = m->index.rows[first];
  const int64_t image = m->patch_image(row);
  REQUIRE(image >= 0);
  CHECK(g.image_ids[static_cast<size_t>(image)] == m->acts.ids[static_cast<size_t>(row)]);
  const CsrMatrix image_rows = w.rows.slice_rows(image * kPatches, kPatches);

  // The map: heatmap_on_image of the latent's grid in the rows as written.
  const OverlaySpec spec{OverlayKind::latent, l, 0.6};
  const cv::Mat map = overlay_map(*m, row, spec);
  const cv::Mat want = explain::heatmap_on_image(explain::latent_grid(image_rows, l), g, image);
  REQUIRE(map.size() == want.size());
  CHECK(cv::norm(map, want, cv::NORM_INF) == 0);
  CHECK(overlay_vmax(map) > 0);
  // Its latent peaks in the cell the fixture put it in.
  cv::Point peak;
  cv::minMaxLoc(map, nullptr, nullptr, nullptr, &peak);
  const int64_t cell = test::viewer_patch_cell(l, kPatches);
  CHECK(peak.x / 12 == cell % kGrid);
  CHECK(peak.y / 12 == cell / kGrid);

  // The pixels: overlay_heatmap of that map over the image file (48 px: no shrinking at 128).
  const Thumbnail t = overlay_thumbnail(*m, row, spec, 128);
  CHECK(t.error.empty());
  REQUIRE(t.width == 48);
  REQUIRE(t.height == 48);
  CHECK(t.rgba == expected_rgba(*m, row, want, 0.6));
  const Thumbnail plain = decode_thumbnail(m->image_path(row), 128);
  CHECK(t.rgba != plain.rgba);  // the overlay draws something
  CHECK(overlay_thumbnail(*m, row, {OverlayKind::latent, l, 0.0}, 128).rgba == plain.rgba);  // opacity 0: the image
  // Shrunk to a smaller tile: the same rule on the geometry scaled down, drawn at that size.
  const Thumbnail small = overlay_thumbnail(*m, row, spec, 24);
  CHECK(small.width == 24);
  CHECK(small.rgba != decode_thumbnail(m->image_path(row), 24).rgba);

  // The attribution map: the class logit's weights (the class the image panel explains) on the
  // latents firing in the patches, and the map is their weighted sum of latent maps.
  const auto detail = image_detail(*m, row);
  const int k = logit_class(detail.proba);
  CHECK(k == 1);  // binary: the positive class
  const auto weights = attribution_weights(*m, row);
  REQUIRE(!weights.empty());
  std::map<int64_t, double> by_latent(weights.begin(), weights.end());
  for (const auto [j, v] : m->acts.acts.row(row)) {
    const double cw = explain::class_weight(m->cbm, k, j);
    if (cw != 0) CHECK(by_latent.at(j) == cw);
  }
  for (const auto& [j, c] : detail.contributions) CHECK(by_latent.count(j) == 1);  // what the bars list
  const cv::Mat attribution = overlay_map(*m, row, {OverlayKind::attribution, -1, 0.6});
  cv::Mat sum(attribution.size(), CV_32F, cv::Scalar(0));
  for (const auto& [j, wj] : weights) sum += wj * overlay_map(*m, row, {OverlayKind::latent, j, 0.6});
  CHECK(cv::norm(attribution, sum, cv::NORM_INF) < 1e-4);

  // One cache key per (row, latent or attribution, opacity).
  const std::string key = overlay_key(row, spec);
  CHECK(key != overlay_key(row + 1, spec));
  CHECK(key != overlay_key(row, {OverlayKind::latent, l + 1, 0.6}));
  CHECK(key != overlay_key(row, {OverlayKind::latent, l, 0.5}));
  CHECK(key != overlay_key(row, {OverlayKind::attribution, l, 0.6}));
  CHECK(overlay_key(row, {OverlayKind::attribution, 1, 0.6}) == overlay_key(row, {OverlayKind::attribution, 2, 0.6}));
  CHECK(parse_overlay_kind("attribution") == OverlayKind::attribution);
  CHECK_FALSE(parse_overlay_kind("sum").has_value());
  // Out of range: nothing to draw, the plain picture.
  CHECK(overlay_map(*m, row, {OverlayKind::latent, m->n_latents(), 0.6}).empty());
  CHECK(overlay_thumbnail(*m, row, {OverlayKind::latent, -1, 0.6}, 128).rgba == plain.rgba);
}

TEST_CASE("viewer model: a click on an image lists the latents of the patch under it, strongest first") {
  const PatchedWorkspace& w = patched_workspace();
  const auto m = WorkspaceModel::load(WorkspacePaths::from_workspace(w.ws));
  REQUIRE(m->has_patches());
  // An image with a patch where two latents fire, so the listing has an order to get right.
  int64_t row = -1;
  for (int64_t r = 0; r < m->n_images() && row < 0; ++r) {
    const CsrMatrix rows = w.rows.slice_rows(m->patch_image(r) * kPatches, kPatches);
    for (int64_t p = 0; p < kPatches; ++p)
      if (rows.row(p).size() >= 2) row = r;
  }
  REQUIRE(row >= 0);
  const int64_t image = m->patch_image(row);
  const CsrMatrix image_rows = w.rows.slice_rows(image * kPatches, kPatches);
  CHECK(patch_image_size(*m, row) == std::pair<int, int>{48, 48});
  int checked = 0;
  for (int64_t p = 0; p < kPatches; ++p) {
    CAPTURE(p);
    const double x = (p % kGrid + 0.5) * 12, y = (p / kGrid + 0.5) * 12;  // the cell's centre
    const PatchListing l = latents_at(*m, row, x, y);
    CHECK(l.row == row);
    REQUIRE(l.patch == p);
    CHECK(l.where == explain::describe_patch(m->patch_maps->geometry(), image, p));
    CHECK(l.where.rfind(fmt::format("cell ({}, {})", p / kGrid, p % kGrid), 0) == 0);
    CHECK(l.box.x0 == doctest::Approx((p % kGrid) * 12));
    CHECK(l.box.y1 == doctest::Approx((p / kGrid + 1) * 12));
    // What the fixture wrote there, by activation (ties: lower latent first).
    std::vector<std::pair<int64_t, float>> want;
    for (const auto [j, v] : image_rows.row(p)) want.emplace_back(j, v);
    std::stable_sort(want.begin(), want.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    CHECK(l.latents == want);
    for (size_t i = 1; i < l.latents.size(); ++i) CHECK(l.latents[i - 1].second >= l.latents[i].second);
    checked += l.latents.size() >= 2;
  }
  CHECK(checked > 0);  // some cell held two latents: the order was tested
  // A latent's own cell lists it, at its image activation.
  const auto [j0, v0] = *m->acts.acts.row(row).begin();
  const int64_t c0 = test::viewer_patch_cell(j0, kPatches);
  const PatchListing own = latents_at(*m, row, (c0 % kGrid) * 12 + 1, (c0 / kGrid) * 12 + 1);
  CHECK(std::find(own.latents.begin(), own.latents.end(), std::pair<int64_t, float>{j0, v0}) != own.latents.end());
  // At most `top`; outside the crop box, no patch.
  CHECK(latents_at(*m, row, 6, 6, 1).latents.size() <= 1);
  CHECK(latents_at(*m, row, -1, 6).patch == -1);
  CHECK(latents_at(*m, row, 48, 6).patch == -1);
  CHECK(latents_at(*m, row, 6, 6).latents.size() == latents_at(*m, row, 6, 6, 100).latents.size());
}

TEST_CASE("viewer model: broken patch activations are a problem naming the file, the rest of the workspace opens") {
  test::TempDir t;
  const std::string ws = test::make_viewer_workspace(t.path.string(), 300);
  const std::string path = ws + "/activations.patches.h5";
  auto problem = [&](const std::string& expect) {
    const auto m = WorkspaceModel::load(WorkspacePaths::from_workspace(ws));
    CHECK(m->has_acts());
    CHECK(m->has_cbm());
    CHECK_FALSE(m->has_patches());
    CHECK(m->patch_image(0) == -1);
    CHECK(overlay_map(*m, 0, {OverlayKind::latent, 0, 0.6}).empty());
    REQUIRE(m->issues.size() == 1);
    CHECK(m->issues[0].file == path);
    INFO(m->issues[0].message);
    CHECK(m->issues[0].message.find(expect) != std::string::npos);
  };
  test::write_text(path, "garbage");
  problem("");
  // Image activations where patch activations belong.
  fs::copy_file(ws + "/activations.h5", path, fs::copy_options::overwrite_existing);
  problem("expected patch activations");
  // Patches of another SAE (more latents than the workspace's).
  {
    const Activations a = read_activations(ws + "/activations.h5");
    PatchGeometry g;
    g.grid_h = g.grid_w = 1;
    g.image_ids = a.ids;
    for (size_t i = 0; i < a.ids.size(); ++i)
      g.image_size.insert(g.image_size.end(), {48, 48}), g.crop_box.insert(g.crop_box.end(), {0, 0, 48, 48});
    CsrMatrix rows = a.acts;
    rows.n_cols = a.acts.n_cols + 4;
    ActivationsWriter wr(path, rows.n_cols, nlohmann::json::object());
    wr.set_patches(g);
    std::vector<std::string> ids;
    for (const auto& id : a.ids) ids.push_back(patch_row_id(id, 0));
    wr.append(ids, rows);
    wr.commit();
  }
  problem("20 latents, the activations have 16");
}

TEST_CASE("viewer model: derived pictures queue under their key, once until forgotten, and a failure is a placeholder") {
  ThumbnailLoader loader(1, 64);
  int made = 0;  // touched only by the loader's one thread, read after it is idle
  auto make = [&made] {
    ++made;
    Thumbnail t;
    t.width = t.height = 1;
    t.rgba = {1, 2, 3, 255};
    return t;
  };
  auto take = [&](size_t n) {
    std::vector<Thumbnail> got;
    for (int i = 0; i < 500 && got.size() < n; ++i) {
      for (auto& th : loader.take_ready()) got.push_back(std::move(th));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return got;
  };
  loader.request("overlay:a", make);
  loader.request("overlay:a", make);  // already asked: not made again
  loader.request("overlay:bad", []() -> Thumbnail { throw InputError("x.h5: truncated"); });
  auto got = take(2);
  REQUIRE(got.size() == 2);
  CHECK(loader.idle());
  CHECK(made == 1);
  std::map<std::string, Thumbnail> by_key;
  for (auto& th : got) by_key[th.path] = th;
  REQUIRE(by_key.count("overlay:a") == 1);
  CHECK(by_key["overlay:a"].error.empty());
  CHECK(by_key["overlay:a"].rgba.size() == 4);
  REQUIRE(by_key.count("overlay:bad") == 1);
  CHECK(by_key["overlay:bad"].error == "x.h5: truncated");
  // A texture cache that dropped the picture forgets the key: it is made again.
  loader.forget("overlay:a");
  loader.request("overlay:a", make);
  CHECK(take(1).size() == 1);
  CHECK(made == 2);
}
