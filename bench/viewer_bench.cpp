// viewer_bench: the viewer on a generated workspace of N images x L latents (~K non-zeros per
// row; default 100,000 x 8,192 x 32) with patch activations on a G x G grid (default 7): time to
// open it (the model the first frame needs), one live intervention re-evaluation over all rows,
// opening the patch activations, a heatmap overlay for one image (what a click waits for), and
// frame times (CPU + GPU, glFinish) with the latent table scrolling and with a latent's grid of
// thumbnails on screen, each without and with heatmap overlays on the thumbnails. Needs a
// display: run it as `xvfb-run -a -s "-screen 0 2560x1600x24" build/bench/viewer_bench`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/activations.h"
#include "core/csv.h"
#include "core/latent_index.h"
#include "core/latent_names.h"
#include "core/linear_model.h"
#include "core/patches.h"
#include "core/progress.h"
#include "core/random.h"
#include "core/workspace_layout.h"
#include "explain/contrib.h"
#include "explain/heatmap.h"
#include "explain/stats.h"
#include "viewer/app.h"
#include "viewer/model/intervention_session.h"
#include "viewer/model/overlays.h"
#include "viewer/model/workspace_model.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(std::min<double>(v.size() - 1, q * (v.size() - 1) + 0.5))];
}

// Patch activations for the images (what `conceptlab run` writes with embed.patches): each latent
// of an image's row fires in a 2 x 2 block of the grid at a place of its own (its activation at
// the block's corner, less around it), written image chunk by image chunk.
void generate_patches(const std::string& dir, const cl::Activations& a, int64_t grid) {
  const int64_t P = grid * grid, n = static_cast<int64_t>(a.ids.size());
  cl::PatchGeometry g;
  g.grid_h = g.grid_w = grid;
  g.image_ids = a.ids;
  for (int64_t i = 0; i < n; ++i) {
    g.image_size.insert(g.image_size.end(), {224, 224});
    g.crop_box.insert(g.crop_box.end(), {0.0f, 0.0f, 224.0f, 224.0f});
  }
  cl::ActivationsWriter w(dir + "/" + cl::workspace::kPatchActivations, a.acts.n_cols,
                          {{"activations", dir + "/" + cl::workspace::kActivations}});
  w.set_patches(g);
  std::vector<std::vector<std::pair<int32_t, float>>> cells(static_cast<size_t>(P));
  std::vector<int32_t> cols;
  std::vector<float> vals;
  for (int64_t i0 = 0; i0 < n; i0 += 1000) {
    cl::CsrMatrix chunk;
    chunk.n_cols = a.acts.n_cols;
    std::vector<std::string> ids;
    for (int64_t i = i0; i < std::min(n, i0 + 1000); ++i) {
      for (auto& c : cells) c.clear();
      for (const auto [j, v] : a.acts.row(i)) {
        const int64_t r = (j * 7 + i) % (grid - 1), c = (j * 13 + i / 3) % (grid - 1);
        const float share[4] = {1.0f, 0.6f, 0.6f, 0.3f};
        for (int q = 0; q < 4; ++q)
          cells[static_cast<size_t>((r + q / 2) * grid + c + q % 2)].emplace_back(j, v * share[q]);
      }
      for (int64_t p = 0; p < P; ++p) {
        cols.clear(), vals.clear();
        for (const auto& [j, v] : cells[static_cast<size_t>(p)]) cols.push_back(j), vals.push_back(v);
        chunk.append_row(cols.data(), vals.data(), static_cast<int64_t>(cols.size()));
        ids.push_back(cl::patch_row_id(a.ids[static_cast<size_t>(i)], p));
      }
    }
    w.append(ids, chunk);
  }
  w.commit();
}

// Writes the workspace files `conceptlab run` would leave (activations, index, names, CBM,
// metadata CSV, workspace.json, patch activations) and image files: n_files real JPEGs,
// hard-linked under every id.
void generate(const std::string& dir, int64_t n, int64_t L, int64_t k, int64_t grid, int64_t n_files) {
  fs::create_directories(dir + "/images");
  cl::Rng rng(7);
  cl::Activations a;
  a.acts.n_cols = L;
  std::vector<int32_t> cols;
  std::vector<float> vals;
  std::vector<int> y(static_cast<size_t>(n)), artifact(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    artifact[static_cast<size_t>(i)] = rng.uniform() < 0.2;
    y[static_cast<size_t>(i)] = rng.uniform() < 0.4;
    cols.clear(), vals.clear();
    // A few planted latents: 0..9 follow the label, 10 the artifact; the rest at random.
    if (y[static_cast<size_t>(i)]) cols.push_back(static_cast<int32_t>(rng.below(10))), vals.push_back(float(2 + rng.uniform()));
    if (artifact[static_cast<size_t>(i)]) cols.push_back(10), vals.push_back(float(2 + rng.uniform()));
    while (static_cast<int64_t>(cols.size()) < k) {
      const auto c = static_cast<int32_t>(11 + rng.below(static_cast<uint64_t>(L - 11)));
      if (std::find(cols.begin(), cols.end(), c) == cols.end()) cols.push_back(c), vals.push_back(float(rng.uniform() * 2));
    }
    a.acts.append_row(cols.data(), vals.data(), static_cast<int64_t>(cols.size()));
    a.ids.push_back(fmt::format("img{:06d}.jpg", i));
  }
  cl::write_activations(dir + "/activations.h5", a);
  if (grid > 1) generate_patches(dir, a, grid);
  cl::LatentIndex idx = cl::explain::build_index(a.acts);
  cl::write_latent_index(dir + "/activations.index.h5", idx);
  cl::LatentNames names;
  for (int64_t j = 0; j < L; j += 7) names.set({j, fmt::format("concept_{}", j), "annotation", 0.5 + rng.uniform() / 2});
  cl::write_latent_names(dir + "/activations.names.h5", names);
  cl::LinearModel m;
  m.classes = {"benign", "malignant"};
  m.n_rows = 1, m.n_features = L;
  m.weights.assign(static_cast<size_t>(L), 0.0f);
  for (int j = 0; j < 10; ++j) m.weights[static_cast<size_t>(j)] = 0.8f;
  m.weights[10] = 0.5f;
  for (int j = 0; j < 300; ++j) m.weights[static_cast<size_t>(11 + rng.below(static_cast<uint64_t>(L - 11)))] = float(rng.normal() * 0.05);
  m.bias = {-1.0f};
  cl::write_linear(dir + "/cbm.h5", m);
  cl::CsvTable t;
  t.header = {"ImageID", "label", "split", "ruler"};
  for (int64_t i = 0; i < n; ++i)
    t.rows.push_back({a.ids[static_cast<size_t>(i)], y[static_cast<size_t>(i)] ? "malignant" : "benign",
                      rng.uniform() < 0.7 ? "train" : "test", std::to_string(artifact[static_cast<size_t>(i)])});
  cl::write_csv(dir + "/meta.csv", t);
  for (int64_t f = 0; f < n_files; ++f) {
    cv::Mat img(224, 224, CV_8UC3, cv::Scalar(150 + f % 60, 170, 210));
    cv::circle(img, {112, 112}, 40 + int(f % 50), cv::Scalar(60, 80 + f % 100, 130), -1);
    cv::imwrite(dir + "/images/file" + std::to_string(f) + ".jpg", img);
  }
  for (int64_t i = 0; i < n; ++i) {
    const std::string link = dir + "/images/" + a.ids[static_cast<size_t>(i)];
    std::error_code ec;
    fs::create_hard_link(dir + "/images/file" + std::to_string(i % n_files) + ".jpg", link, ec);
  }
  const nlohmann::json ws = {
      {"format", "conceptlab.workspace"},
      {"schema_version", 1},
      {"steps", nlohmann::json::object()},
      {"config", {{"data", {{"csv", dir + "/meta.csv"}, {"image_root", dir + "/images"}, {"label_col", "label"},
                            {"split_col", ""}, {"subgroup_col", "ruler"}, {"id_col", "ImageID"}}}}}};
  std::ofstream(dir + "/workspace.json") << ws.dump(2);
}

}  // namespace

const char* kUsage =
    "usage: viewer_bench [--n N] [--latents L] [--k K] [--grid G] [--frames F] [--repeat R] [--width W --height H] "
    "[--dir DIR]\n";

int main(int argc, char** argv) {
  int64_t n = 100000, L = 8192, k = 32, grid = 7, frames = 200, repeat = 1, width = 1600, height = 1000;
  std::string dir = (fs::temp_directory_path() / "conceptlab_viewer_bench").string();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string o = argv[i];
    if (o == "--n") n = std::stoll(argv[i + 1]);
    else if (o == "--latents") L = std::stoll(argv[i + 1]);
    else if (o == "--k") k = std::stoll(argv[i + 1]);
    else if (o == "--grid") grid = std::stoll(argv[i + 1]);
    else if (o == "--frames") frames = std::stoll(argv[i + 1]);
    else if (o == "--repeat") repeat = std::stoll(argv[i + 1]);
    else if (o == "--dir") dir = argv[i + 1];
    else if (o == "--width") width = std::stoll(argv[i + 1]);
    else if (o == "--height") height = std::stoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "%s", kUsage);
      return 2;
    }
  }
  if ((argc - 1) % 2) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  auto t0 = Clock::now();
  const std::string stamp = fmt::format("{}/generated_v3_{}_{}_{}_{}", dir, n, L, k, grid);
  if (!fs::exists(stamp)) {
    fs::remove_all(dir);
    generate(dir, n, L, k, grid, 256);
    std::ofstream(stamp) << "ok\n";
    std::printf("generated %lld images x %lld latents (%lld per row), patches %lldx%lld, in %.1f s under %s\n",
                (long long)n, (long long)L, (long long)k, (long long)grid, (long long)grid, secs(t0), dir.c_str());
  }

  // Opening: what the first useful frame needs (the app does this on its worker thread).
  t0 = Clock::now();
  auto m = cl::viewer::WorkspaceModel::load(cl::viewer::WorkspacePaths::from_workspace(dir), cl::silent_progress(),
                                            false);  // as the viewer: the patches after the first frame
  const double t_load = secs(t0);
  t0 = Clock::now();
  cl::viewer::InterventionSession session(*m);
  const auto global = cl::explain::global_explanations(m->cbm, m->classes(), m->labelled->data.X, m->labelled->data.y, 15);
  const double t_derived = secs(t0);
  std::printf("open: model %.2f s + session and global explanations %.2f s = %.2f s  (%zu problems)\n", t_load, t_derived,
              t_load + t_derived, m->issues.size());
  // The patch activations: opened by the viewer on a thread of its own after the first frame.
  if (m->wants_patches()) {
    t0 = Clock::now();
    m->set_patch_activations(m->open_patch_activations());
    std::printf("patch activations (%lld x %lld rows, on a thread of their own after the first frame): %.2f s\n",
                (long long)m->patch_maps->geometry().n_images(), (long long)m->patch_maps->geometry().patches(),
                secs(t0));
  }

  // One live re-evaluation: zero the 5 largest-weight latents, all evaluated rows.
  std::vector<cl::explain::LatentEdit> edits;
  for (int64_t j = 0; j < 5; ++j) edits.push_back({j, cl::explain::EditOp::zero, 0});
  std::vector<double> ms;
  for (int r = 0; r < 21; ++r) {
    edits[0].op = r % 2 ? cl::explain::EditOp::scale : cl::explain::EditOp::zero;
    edits[0].value = 0.05 * r;
    ms.push_back(session.evaluate(edits).seconds * 1000);
  }
  std::printf("live intervention over %zu rows: median %.1f ms, max %.1f ms\n", session.eval_set().rows.size(),
              percentile(ms, 0.5), *std::max_element(ms.begin(), ms.end()));

  // A heatmap for a clicked image: the overlay of the image panel (512 px) and of a 128 px tile,
  // patch rows read, mapped, blended, on one of the viewer's loader threads; it shows the frame
  // after it is done.
  if (m->has_patches()) {
    const int64_t b = m->index.indptr[10];
    using cl::viewer::OverlayKind;
    const std::vector<std::pair<OverlayKind, int>> cases = {{OverlayKind::latent, 512}, {OverlayKind::attribution, 512},
                                                            {OverlayKind::latent, 128}};
    for (const auto& [kind, size] : cases) {
      ms.clear();
      for (int64_t i = 0; i < 32; ++i) {
        const auto c0 = Clock::now();
        const int64_t row = m->index.rows[static_cast<size_t>(b + i)];
        const auto t = cl::viewer::overlay_thumbnail(*m, row, {kind, 10, 0.6}, size);
        ms.push_back(secs(c0) * 1000);
        if (!t.error.empty()) std::fprintf(stderr, "overlay: %s\n", t.error.c_str());
      }
      std::printf("heatmap overlay (%s, %d px, one image): median %.2f ms, max %.2f ms\n",
                  cl::viewer::overlay_kind_name(kind), size, percentile(ms, 0.5), *std::max_element(ms.begin(), ms.end()));
    }
  } else {
    std::printf("no patch activations (%zu problems)\n", m->issues.size());
  }
  m.reset();

  // Frames: the latents table (scrolling a row per frame), then a latent's thumbnail grid, each
  // without and with the latent's heatmap over the thumbnails. --repeat R runs the four R times,
  // interleaved, and sums them up by the median of each one's p95: on a shared machine a burst of
  // someone else's work lands on one run, not on one side of the comparison.
  std::vector<std::pair<std::string, std::string>> runs;
  for (int64_t r = 0; r < repeat; ++r)
    for (const char* panel : {"latents", "latent"})
      for (const char* overlay : {"", "latent"}) runs.emplace_back(panel, overlay);
  std::map<std::pair<std::string, std::string>, std::vector<double>> p95s;  // (panel, overlay) -> each run's p95
  for (const auto& [panel, overlay] : runs) {
    if (!overlay.empty() && grid < 2) continue;
    cl::viewer::ViewerOptions o;
    o.paths = cl::viewer::WorkspacePaths::from_workspace(dir);
    o.screenshot_path = fmt::format("{}/bench_{}{}.png", dir, panel, overlay.empty() ? "" : "_overlay");
    o.overlay = overlay;
    o.panel = panel;
    o.select = "latent=10";
    o.width = static_cast<int>(width), o.height = static_cast<int>(height);
    o.bench_frames = static_cast<int>(frames);
    cl::viewer::ScreenshotInfo info;
    t0 = Clock::now();
    if (cl::viewer::run_viewer(o, &info) != 0) {
      std::fprintf(stderr, "viewer_bench: no window (run under xvfb-run)\n");
      return 1;
    }
    std::printf("frames, %s panel%s at %dx%d: %zu timed, median %.2f ms, p95 %.2f ms, max %.2f ms (ImGui part: median %.2f ms, "
                "p95 %.2f ms); %d thumbnails drawn (whole run %.1f s; screenshot %s)\n",
                panel.c_str(), overlay.empty() ? "" : " with overlays", o.width, o.height, info.frame_ms.size(),
                percentile(info.frame_ms, 0.5),
                percentile(info.frame_ms, 0.95), info.frame_ms.empty() ? 0.0 : *std::max_element(info.frame_ms.begin(), info.frame_ms.end()),
                percentile(info.cpu_ms, 0.5), percentile(info.cpu_ms, 0.95), info.thumbnails_drawn, secs(t0),
                o.screenshot_path.c_str());
    p95s[{panel, overlay}].push_back(percentile(info.frame_ms, 0.95));
  }
  if (repeat > 1)
    for (const auto& [what, v] : p95s)
      std::printf("frames, %s panel%s: p95 over %zu runs: median %.2f ms, best %.2f ms, worst %.2f ms\n", what.first.c_str(),
                  what.second.empty() ? "" : " with overlays", v.size(), percentile(v, 0.5), *std::min_element(v.begin(), v.end()),
                  *std::max_element(v.begin(), v.end()));
  return 0;
}
