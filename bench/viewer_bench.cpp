// viewer_bench: the viewer on a generated workspace of N images x L latents (~K non-zeros per
// row; default 100,000 x 8,192 x 32): time to open it (the model the first frame needs), one
// live intervention re-evaluation over all rows, and frame times (CPU + GPU, glFinish)
// with the latent table scrolling and with a latent's grid of thumbnails on screen. Needs a
// display: run it as `xvfb-run -a -s "-screen 0 2560x1600x24" build/bench/viewer_bench`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
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
#include "core/random.h"
#include "explain/contrib.h"
#include "explain/stats.h"
#include "viewer/app.h"
#include "viewer/model/intervention_session.h"
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

// Writes the workspace files `conceptlab run` would leave (activations, index, names, CBM,
// metadata CSV, workspace.json) and image files: n_files real JPEGs, hard-linked under every id.
void generate(const std::string& dir, int64_t n, int64_t L, int64_t k, int64_t n_files) {
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

int main(int argc, char** argv) {
  int64_t n = 100000, L = 8192, k = 32, frames = 200, width = 1600, height = 1000;
  std::string dir = (fs::temp_directory_path() / "conceptlab_viewer_bench").string();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string o = argv[i];
    if (o == "--n") n = std::stoll(argv[i + 1]);
    else if (o == "--latents") L = std::stoll(argv[i + 1]);
    else if (o == "--k") k = std::stoll(argv[i + 1]);
    else if (o == "--frames") frames = std::stoll(argv[i + 1]);
    else if (o == "--dir") dir = argv[i + 1];
    else if (o == "--width") width = std::stoll(argv[i + 1]);
    else if (o == "--height") height = std::stoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: viewer_bench [--n N] [--latents L] [--k K] [--frames F] [--width W --height H] [--dir DIR]\n");
      return 2;
    }
  }
  if ((argc - 1) % 2) {
    std::fprintf(stderr, "usage: viewer_bench [--n N] [--latents L] [--k K] [--frames F] [--width W --height H] [--dir DIR]\n");
    return 2;
  }
  auto t0 = Clock::now();
  const std::string stamp = fmt::format("{}/generated_v2_{}_{}_{}", dir, n, L, k);
  if (!fs::exists(stamp)) {
    fs::remove_all(dir);
    generate(dir, n, L, k, 256);
    std::ofstream(stamp) << "ok\n";
    std::printf("generated %lld images x %lld latents (%lld per row) in %.1f s under %s\n", (long long)n, (long long)L,
                (long long)k, secs(t0), dir.c_str());
  }

  // Opening: what the first useful frame needs (the app does this on its worker thread).
  t0 = Clock::now();
  auto m = cl::viewer::WorkspaceModel::load(cl::viewer::WorkspacePaths::from_workspace(dir));
  const double t_load = secs(t0);
  t0 = Clock::now();
  cl::viewer::InterventionSession session(*m);
  const auto global = cl::explain::global_explanations(m->cbm, m->classes(), m->labelled->data.X, m->labelled->data.y, 15);
  const double t_derived = secs(t0);
  std::printf("open: model %.2f s + session and global explanations %.2f s = %.2f s  (%zu problems)\n", t_load, t_derived,
              t_load + t_derived, m->issues.size());

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
  m.reset();

  // Frames: the latents table (scrolling a row per frame), then a latent's thumbnail grid.
  for (const std::string panel : {"latents", "latent"}) {
    cl::viewer::ViewerOptions o;
    o.paths = cl::viewer::WorkspacePaths::from_workspace(dir);
    o.screenshot_path = fmt::format("{}/bench_{}.png", dir, panel);
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
    std::printf("frames, %s panel at %dx%d: %zu timed, median %.2f ms, p95 %.2f ms, max %.2f ms (ImGui part: median %.2f ms, "
                "p95 %.2f ms); %d thumbnails drawn (whole run %.1f s; screenshot %s)\n",
                panel.c_str(), o.width, o.height, info.frame_ms.size(), percentile(info.frame_ms, 0.5),
                percentile(info.frame_ms, 0.95), info.frame_ms.empty() ? 0.0 : *std::max_element(info.frame_ms.begin(), info.frame_ms.end()),
                percentile(info.cpu_ms, 0.5), percentile(info.cpu_ms, 0.95), info.thumbnails_drawn, secs(t0),
                o.screenshot_path.c_str());
  }
  return 0;
}
