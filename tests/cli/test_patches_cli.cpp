// The spatial path end to end with encoders the test builds: a feature-map encoder whose patch
// lights up exactly where a generated image has a red square (square and resized-and-cropped
// images), a ViT-style token encoder with and without a class token, bad outputs and flags, and
// `sae encode` on patches (pooled image rows = a direct pooling of the patch rows).
#include "tests/torch_doctest.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "core/activations.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/patches.h"
#include "explain/heatmap.h"
#include "explain/masks.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using cl::test::run_cli;
using cl::test::TempDir;

namespace {

constexpr int kInput = 32;  // model input side; 4 x 4 grid of 8-pixel cells

// Preprocessing: shorter side to 32, centre crop, [0, 1] without normalisation.
void write_preprocess(const std::string& json_path) {
  std::ofstream(json_path) << R"J({"image_size": 32, "resize": "shorter_side_center_crop",
    "interpolation": "bilinear_antialias", "mean": [0, 0, 0], "std": [1, 1, 1]})J";
}

// Features per 8 x 8 cell: [relu(R - G), R, G, B, 1] averaged over the cell. `kind`: "map" gives
// [B, 5, 4, 4]; "tokens" gives [B, 1 + 16, 5] with a class token (the max over the patches)
// first; "flat" gives [B, 5] (no grid).
void write_model(const std::string& path, const std::string& kind) {
  torch::jit::Module m("patch_encoder");
  std::string body = R"JIT(
def forward(self, x):
    red = torch.relu(x[:, 0:1] - x[:, 1:2])
    f = torch.avg_pool2d(torch.cat([red, x, torch.ones_like(red)], 1), [8, 8])
)JIT";
  if (kind == "map") body += "    return f\n";
  if (kind == "tokens")
    body += "    p = f.flatten(2).transpose(1, 2)\n    return torch.cat([p.max(1, keepdim=True)[0], p], 1)\n";
  if (kind == "flat") body += "    return f.mean([2, 3])\n";
  m.define(body);
  m.save(path);
  write_preprocess(fs::path(path).replace_extension(".json").string());
}

// A gray image with a pure red square [x0, x0 + side) x [y0, y0 + side).
void write_square_image(const std::string& path, int w, int h, int x0, int y0, int side) {
  cv::Mat img(h, w, CV_8UC3, cv::Scalar(128, 128, 128));
  img(cv::Rect(x0, y0, side, side)).setTo(cv::Scalar(0, 0, 255));  // BGR
  REQUIRE(cv::imwrite(path, img));
}

// sq.png: 64 x 64, square on cell (1, 2). wide.png: 96 x 64 -> 48 x 32 -> crop x [8, 40): the
// crop box is [16, 0, 80, 64] in the original; the square [16, 32) x [32, 48) lands on cell (2, 0).
void write_images(const TempDir& t) {
  fs::create_directories(t.file("img"));
  write_square_image(t.file("img/sq.png"), 64, 64, 32, 16, 16);
  write_square_image(t.file("img/wide.png"), 96, 64, 16, 32, 16);
  cl::CsvTable meta;
  meta.header = {"ImageID", "label"};
  meta.rows = {{"sq.png", "1"}, {"wide.png", "0"}};
  cl::write_csv(t.file("meta.csv"), meta);
}

std::vector<std::string> embed_args(const TempDir& t, const std::string& model, const std::string& out) {
  return {"-q", "embed", "--model", t.file(model), "--csv", t.file("meta.csv"), "--image-root", t.file("img"),
          "--out", t.file(out), "--device", "cpu"};
}

std::vector<std::string> plus(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The patch (row-major) with the largest value of feature 0 (the red detector) for image i.
int64_t reddest_patch(const cl::EmbeddingsReader& r, int64_t image) {
  const int64_t P = r.patches_per_image(), D = r.dim();
  std::vector<float> x(static_cast<size_t>(P * D));
  r.read_rows(image * P, P, x.data());
  int64_t best = 0;
  for (int64_t p = 1; p < P; ++p)
    if (x[p * D] > x[best * D]) best = p;
  return best;
}

// Embeds the two square images with the feature-map model and writes patch activations pa.h5
// whose latent 0 is constant on every patch (it peaks at patch 0, away from the squares) and
// latent 1 is the red detector (feature 0) of each patch.
struct RedPatches {
  cl::PatchGeometry geometry;
  cl::CsrMatrix acts;
};
RedPatches write_red_patches(const TempDir& t) {
  write_images(t);
  write_model(t.file("map.pt"), "map");
  REQUIRE(run_cli(plus(embed_args(t, "map.pt", "e.h5"), {"--patches"})).exit_code == 0);
  cl::EmbeddingsReader pr(t.file("e.patches.h5"));
  RedPatches rp{*pr.patches(), {}};
  std::vector<float> x(static_cast<size_t>(pr.rows() * pr.dim()));
  pr.read_rows(0, pr.rows(), x.data());
  rp.acts.n_cols = 2;
  for (int64_t r = 0; r < pr.rows(); ++r) {
    const int32_t cols[2] = {0, 1};
    const float vals[2] = {1.0f, x[r * pr.dim()]};
    rp.acts.append_row_sorted(cols, vals, vals[1] > 0 ? 2 : 1);
  }
  cl::ActivationsWriter w(t.file("pa.h5"), 2, {{"patch_embeddings", t.file("e.patches.h5")}});
  w.set_patches(rp.geometry);
  w.append(pr.ids(), rp.acts);
  w.commit();
  return rp;
}

}  // namespace

TEST_CASE("embed --patches: the square's patch at the right cell and place, the pooled file the patches' mean") {
  TempDir t;
  write_images(t);
  write_model(t.file("map.pt"), "map");
  auto r = run_cli(plus(embed_args(t, "map.pt", "e.h5"), {"--patches", "--patch-fp16", "false", "--json"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto rep = nlohmann::json::parse(r.out);
  CHECK(rep["patch_out"] == t.file("e.patches.h5"));
  CHECK(rep["grid"] == nlohmann::json::array({4, 4}));

  cl::EmbeddingsReader pr(t.file("e.patches.h5"));
  REQUIRE(pr.patches() != nullptr);
  const cl::PatchGeometry& g = *pr.patches();
  CHECK(g.image_ids == std::vector<std::string>{"sq.png", "wide.png"});
  CHECK(g.image_size == std::vector<int32_t>{64, 64, 96, 64});
  CHECK(g.crop_box == std::vector<float>{0, 0, 64, 64, 16, 0, 80, 64});
  CHECK(pr.dim() == 5);
  // The red patch is the square's cell, and its box on the original image holds the square's centre.
  CHECK(reddest_patch(pr, 0) == 1 * 4 + 2);
  CHECK(reddest_patch(pr, 1) == 2 * 4 + 0);
  for (auto [image, cx, cy] : {std::tuple{0, 40.0, 24.0}, std::tuple{1, 24.0, 40.0}}) {
    const cl::Box b = cl::patch_box(g, image, reddest_patch(pr, image));
    CHECK(b.x0 <= cx);
    CHECK(cx < b.x1);
    CHECK(b.y0 <= cy);
    CHECK(cy < b.y1);
    CHECK(b.x1 - b.x0 == doctest::Approx(16));  // a cell is 8 input pixels = 16 original pixels
  }
  // The image embeddings are the mean over the grid.
  const cl::Embeddings e = cl::read_embeddings(t.file("e.h5"));
  REQUIRE(e.n == 2);
  CHECK(e.config["patch_embeddings"] == t.file("e.patches.h5"));
  CHECK(e.columns.size() == 1);  // the CSV's label column, as without patches
  std::vector<float> x(static_cast<size_t>(pr.rows() * pr.dim()));
  pr.read_rows(0, pr.rows(), x.data());
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t d = 0; d < 5; ++d) {
      double mean = 0;
      for (int64_t p = 0; p < 16; ++p) mean += x[(i * 16 + p) * 5 + d];
      CHECK(e.row(i)[d] == doctest::Approx(mean / 16).epsilon(1e-5));
    }
  CHECK(e.row(0)[4] == doctest::Approx(1));
}

TEST_CASE("embed of token outputs: class token detected or declared, grid declared, patches equal the feature map's") {
  TempDir t;
  write_images(t);
  write_model(t.file("map.pt"), "map");
  write_model(t.file("tok.pt"), "tokens");
  REQUIRE(run_cli(plus(embed_args(t, "map.pt", "m.h5"), {"--patches", "--patch-fp16", "false"})).exit_code == 0);
  auto r = run_cli(plus(embed_args(t, "tok.pt", "t.h5"), {"--patches", "--patch-fp16", "false"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const cl::Embeddings em = cl::read_embeddings(t.file("m.patches.h5")), et = cl::read_embeddings(t.file("t.patches.h5"));
  CHECK(et.data == em.data);  // 17 tokens: a class token detected, 16 patch tokens on a 4 x 4 grid
  // The image embedding is the class token (the max over patches) by default ...
  const cl::Embeddings cls = cl::read_embeddings(t.file("t.h5"));
  for (int64_t d = 0; d < 5; ++d) {
    float mx = -1e9f;
    for (int64_t p = 0; p < 16; ++p) mx = std::max(mx, em.row(p)[d]);
    CHECK(cls.row(0)[d] == mx);
  }
  // ... and the patch tokens' mean with --tokens patches (then it equals the feature map's mean).
  REQUIRE(run_cli(plus(embed_args(t, "tok.pt", "tp.h5"), {"--tokens", "patches"})).exit_code == 0);
  const cl::Embeddings tp = cl::read_embeddings(t.file("tp.h5")), mp = cl::read_embeddings(t.file("m.h5"));
  for (size_t i = 0; i < tp.data.size(); ++i) CHECK(tp.data[i] == doctest::Approx(mp.data[i]).epsilon(1e-6));
  // A declared grid that fits, and in the encoder's JSON instead of flags.
  REQUIRE(run_cli(plus(embed_args(t, "tok.pt", "g.h5"), {"--patches", "--grid", "2x8"})).exit_code == 0);
  CHECK(cl::EmbeddingsReader(t.file("g.patches.h5")).patches()->grid_w == 8);
  std::ofstream(t.file("tok.json")) << R"J({"image_size": 32, "mean": [0, 0, 0], "std": [1, 1, 1],
    "patches": true, "output": {"tokens": "all", "grid": "8x2"}})J";
  REQUIRE(run_cli(embed_args(t, "tok.pt", "j.h5")).exit_code == 0);
  CHECK(cl::EmbeddingsReader(t.file("j.patches.h5")).patches()->grid_h == 8);

  // Without a class token the 17 tokens form no grid: exit 1 naming the model and the way out.
  auto bad = run_cli(plus(embed_args(t, "tok.pt", "b.h5"), {"--patches", "--prefix-tokens", "0"}));
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("tok.pt") != std::string::npos);
  CHECK(bad.err.find("--grid") != std::string::npos);
  bad = run_cli(plus(embed_args(t, "tok.pt", "b.h5"), {"--patches", "--grid", "3x5"}));
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("the grid 3x5") != std::string::npos);
  bad = run_cli(plus(embed_args(t, "tok.pt", "b.h5"), {"--grid", "3by5"}));
  CHECK(bad.exit_code == 2);
  bad = run_cli(plus(embed_args(t, "tok.pt", "b.h5"), {"--tokens", "cls", "--prefix-tokens", "0", "--grid", "1x17"}));
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("no class token") != std::string::npos);
  CHECK(!fs::exists(t.file("b.h5")));
  CHECK(!fs::exists(t.file("b.patches.h5")));
}

TEST_CASE("embed --patches refuses a model without a grid, shards and an output clash, writing nothing") {
  TempDir t;
  write_images(t);
  write_model(t.file("flat.pt"), "flat");
  write_model(t.file("map.pt"), "map");
  auto r = run_cli(plus(embed_args(t, "flat.pt", "f.h5"), {"--patches"}));
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("flat.pt") != std::string::npos);
  CHECK(r.err.find("no patch grid") != std::string::npos);
  CHECK(!fs::exists(t.file("f.h5")));
  CHECK(run_cli(plus(embed_args(t, "flat.pt", "f.h5"), {})).exit_code == 0);  // fine without --patches
  CHECK(run_cli(plus(embed_args(t, "map.pt", "s.h5"), {"--patches", "--shard", "0/2"})).exit_code == 2);
  CHECK(run_cli(plus(embed_args(t, "map.pt", "s.h5"), {"--patches", "--patch-out", t.file("s.h5")})).exit_code == 2);
  r = run_cli(plus(embed_args(t, "map.pt", "s.h5"), {"--patches", "--grid", "2x8"}));  // the map is 4 x 4
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("declared grid is 2x8") != std::string::npos);
  CHECK(!fs::exists(t.file("s.h5")));
}

TEST_CASE("sae encode on patches: image rows pool the patch rows (max, mean, sum), patch rows carry the grid") {
  TempDir t;
  // Random patch embeddings: 6 images x 3 x 2 patches x 8 dims.
  const int64_t n = 6, P = 6, D = 8;
  std::vector<float> x(static_cast<size_t>(n * P * D));
  uint64_t s = 5;
  for (auto& v : x) v = static_cast<float>((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 40) / (1 << 24) - 0.5f;
  std::vector<std::string> ids;
  std::vector<int32_t> sizes;
  std::vector<float> boxes;
  for (int64_t i = 0; i < n; ++i) {
    ids.push_back("im" + std::to_string(i));
    sizes.insert(sizes.end(), {30, 20});
    boxes.insert(boxes.end(), {0, 0, 30, 20});
  }
  {
    cl::PatchEmbeddingsWriter w(t.file("p.h5"), 3, 2, D, false, {});
    w.append(x.data(), n, ids, sizes.data(), boxes.data());
    w.commit();
  }
  auto tr = run_cli({"-q", "sae", "train", "--embeddings", t.file("p.h5"), "--out", t.file("s.h5"), "--n-latents", "16",
                     "--k", "3", "--batch", "12", "--epochs", "3", "--device", "cpu"});
  INFO(tr.err);
  REQUIRE(tr.exit_code == 0);
  for (const std::string pool : {"max", "mean", "sum"}) {
    auto r = run_cli({"-q", "sae", "encode", "--sae", t.file("s.h5"), "--embeddings", t.file("p.h5"), "--out",
                      t.file("a_" + pool + ".h5"), "--patch-out", t.file("pa.h5"), "--pool", pool, "--batch", "7"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const cl::Activations pa = cl::read_activations(t.file("pa.h5"));
    const cl::CsrMatrix* patches = &pa.acts;
    REQUIRE(patches->n_rows == n * P);
    CHECK(pa.ids[7] == "im1#1");
    const auto geom = cl::ActivationsReader(t.file("pa.h5")).patches();
    REQUIRE(geom.has_value());
    CHECK(geom->grid_h == 3);
    CHECK(geom->grid_w == 2);
    CHECK(patches->nnz() == n * P * 3);  // k = 3 per patch
    const cl::Activations a = cl::read_activations(t.file("a_" + pool + ".h5"));
    CHECK(a.ids == ids);
    CHECK(a.config["pool"] == pool);
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> want(16, 0.0);  // top-k codes are >= 0: max may start at 0
      for (int64_t p = 0; p < P; ++p)
        for (const auto [c, v] : patches->row(i * P + p)) want[c] = pool == "max" ? std::max<double>(want[c], v) : want[c] + v;
      std::vector<double> got(16, 0.0);
      for (const auto [c, v] : a.acts.row(i)) got[c] = v;
      for (int c = 0; c < 16; ++c) CHECK(got[c] == doctest::Approx(pool == "mean" ? want[c] / P : want[c]).epsilon(1e-6));
    }
  }
  // Image embeddings have no patches to write.
  cl::Embeddings e;
  e.n = 2;
  e.dim = D;
  e.ids = {"a", "b"};
  e.data.assign(static_cast<size_t>(2 * D), 0.5f);
  cl::write_embeddings(t.file("img.h5"), e);
  auto r = run_cli({"-q", "sae", "encode", "--sae", t.file("s.h5"), "--embeddings", t.file("img.h5"), "--out",
                    t.file("x.h5"), "--patch-out", t.file("px.h5")});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("img.h5") != std::string::npos);
  CHECK(run_cli({"-q", "sae", "encode", "--sae", t.file("s.h5"), "--embeddings", t.file("p.h5"), "--out",
                 t.file("x.h5"), "--pool", "median"}).exit_code == 2);
  CHECK(run_cli({"-q", "sae", "encode", "--sae", t.file("s.h5"), "--embeddings", t.file("p.h5"), "--out",
                 t.file("x.h5"), "--patch-out", t.path.string() + "/./x.h5"}).exit_code == 2);
  CHECK(!fs::exists(t.file("x.h5")));
}

TEST_CASE("derm7pt features encoder: patch means equal the reference embeddings (optional: needs ../shared)") {
  const std::string shared = cl::test::shared_dir();
  if (shared.empty() || !fs::exists(shared + "/derm7pt/encoder/mobilenet_v1_224_features.pt")) {
    MESSAGE("skipped: ../shared/derm7pt absent");
    return;
  }
  TempDir t;
  const auto full = cl::read_csv(shared + "/derm7pt/meta.csv");
  cl::CsvTable meta;
  meta.header = {"ImageID"};
  const size_t col = static_cast<size_t>(full.col("ImageID"));
  for (size_t i = 0; i < 6; ++i) meta.rows.push_back({full.rows[i][col]});
  cl::write_csv(t.file("meta.csv"), meta);
  auto r = run_cli({"-q", "embed", "--model", shared + "/derm7pt/encoder/mobilenet_v1_224_features.pt", "--csv",
                    t.file("meta.csv"), "--image-root", shared + "/derm7pt/images", "--out", t.file("e.h5"), "--patches",
                    "--device", "cpu"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const cl::Embeddings ref = cl::read_embeddings(shared + "/derm7pt/embeddings_mnv1.h5");
  const cl::Embeddings e = cl::read_embeddings(t.file("e.h5"));
  cl::EmbeddingsReader pr(t.file("e.patches.h5"));
  CHECK(pr.patches()->grid_h == 7);
  CHECK(pr.patches_per_image() == 49);
  std::vector<float> x(static_cast<size_t>(49 * 1024));
  double worst_ref = 0, worst_half = 0;
  for (int64_t i = 0; i < e.n; ++i) {
    const auto it = std::find(ref.ids.begin(), ref.ids.end(), e.ids[i]);
    REQUIRE(it != ref.ids.end());
    const float* want = ref.row(it - ref.ids.begin());
    pr.read_rows(i * 49, 49, x.data());
    for (int64_t d = 0; d < 1024; ++d) {
      double mean = 0;
      for (int64_t p = 0; p < 49; ++p) mean += x[p * 1024 + d];
      worst_ref = std::max(worst_ref, std::abs(double(e.row(i)[d]) - want[d]));
      worst_half = std::max(worst_half, std::abs(mean / 49 - e.row(i)[d]));
    }
  }
  CHECK(worst_ref < 2e-3);   // the Python reference (PIL-exact preprocessing)
  CHECK(worst_half < 5e-3);  // float16 patches, values in [0, 6]
}

TEST_CASE("explain heatmap: the map's maximum lies on the square in the original image (square and cropped images)") {
  TempDir t;
  const RedPatches rp = write_red_patches(t);
  const cl::PatchGeometry& g = rp.geometry;
  const cl::CsrMatrix& acts = rp.acts;
  // The library: the upsampled map's maximum, in original pixels, is inside the square.
  for (auto [image, sx0, sy0] : {std::tuple{0, 32, 16}, std::tuple{1, 16, 32}}) {
    CAPTURE(image);
    const auto grid = cl::explain::latent_grid(acts.slice_rows(image * 16, 16), 1);
    const cv::Mat map = cl::explain::heatmap_on_image(grid, g, image);
    CHECK(map.cols == g.image_size[image * 2]);
    CHECK(map.rows == g.image_size[image * 2 + 1]);
    cv::Point at;
    cv::minMaxLoc(map, nullptr, nullptr, nullptr, &at);
    CHECK(at.x >= sx0);
    CHECK(at.x < sx0 + 16);
    CHECK(at.y >= sy0);
    CHECK(at.y < sy0 + 16);
    if (image == 1) CHECK(map.at<float>(32, 4) == 0);  // left of the crop box: the model never saw it
  }
  // The command: top images, their peaks and a PNG the size of the montage; image_root found through the files.
  auto r = run_cli({"-q", "explain", "heatmap", "--patch-activations", t.file("pa.h5"), "--latent", "1", "--out",
                    t.file("h.png"), "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto rep = nlohmann::json::parse(r.out);
  REQUIRE(rep["images"].size() == 2);
  for (const auto& j : rep["images"]) {
    CHECK(j["image_found"] == true);
    const bool sq = j["id"] == "sq.png";
    CHECK(j["cell"] == (sq ? nlohmann::json::array({1, 2}) : nlohmann::json::array({2, 0})));
    CHECK(j["box"][0].get<double>() == doctest::Approx(sq ? 32 : 16));
  }
  const cv::Mat png = cv::imread(t.file("h.png"));
  CHECK(png.cols > 2 * 224);
  // An overlay differs from the bare image where the latent fires, and only there.
  const cv::Mat bare = cv::imread(t.file("img/wide.png"));
  const auto grid = cl::explain::latent_grid(acts.slice_rows(16, 16), 1);
  const cv::Mat over = cl::explain::overlay_heatmap(bare, cl::explain::heatmap_on_image(grid, g, 1), 0, 0.6);
  CHECK(cv::norm(over, bare, cv::NORM_INF) == 0);  // vmax 0: nothing drawn
  const cv::Mat over2 = cl::explain::overlay_heatmap(bare, cl::explain::heatmap_on_image(grid, g, 1), 1.0, 0.6);
  CHECK(cv::norm(over2(cv::Rect(16, 32, 16, 16)), bare(cv::Rect(16, 32, 16, 16)), cv::NORM_INF) > 50);
  CHECK(cv::norm(over2(cv::Rect(60, 4, 10, 10)), bare(cv::Rect(60, 4, 10, 10)), cv::NORM_INF) == 0);

  // Image activations encoded with these patches: retrieval says where the latent fires and its
  // montage overlays the heatmaps.
  {
    nlohmann::json config = {{"patch_activations", t.file("pa.h5")}, {"embeddings", t.file("e.h5")}};
    cl::write_activations(t.file("ia.h5"), cl::Activations{g.image_ids, cl::pool_patches(acts, 16, "max"), config});
  }
  r = run_cli({"-q", "explain", "retrieve", "--activations", t.file("ia.h5"), "--latent", "1", "--montage", t.file("m.png"),
               "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto ret = nlohmann::json::parse(r.out);
  CHECK(ret["patch_activations"] == t.file("pa.h5"));
  REQUIRE(ret["images"].size() == 2);
  for (const auto& j : ret["images"])
    CHECK(j["where"].get<std::string>().rfind(j["id"] == "sq.png" ? "cell (1, 2)" : "cell (2, 0)", 0) == 0);
  CHECK(cv::imread(t.file("m.png")).rows > 160);

  // Bad input: image activations, a latent out of range, an unknown id; all exit with the file named.
  auto bad = run_cli({"-q", "explain", "heatmap", "--patch-activations", t.file("pa.h5"), "--latent", "5"});
  CHECK(bad.exit_code == 2);
  bad = run_cli({"-q", "explain", "heatmap", "--patch-activations", t.file("pa.h5"), "--latent", "1", "--id", "nope.png"});
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("nope.png") != std::string::npos);
  cl::write_activations(t.file("img_acts.h5"), cl::Activations{{"a"}, acts.slice_rows(0, 1), {}});
  bad = run_cli({"-q", "explain", "heatmap", "--patch-activations", t.file("img_acts.h5"), "--latent", "0"});
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("img_acts.h5") != std::string::npos);
}

TEST_CASE("explain localize: pointing game and patch AUROC equal a direct computation, bad masks exit 1 naming the file") {
  TempDir t;
  write_red_patches(t);
  // Masks as a folder: the square of each image; the "none" concept has no mask anywhere.
  fs::create_directories(t.file("masks/red"));
  fs::create_directories(t.file("masks/none"));
  const std::vector<std::tuple<std::string, int, int, int, int>> squares = {{"sq", 64, 64, 32, 16}, {"wide", 96, 64, 16, 32}};
  for (const auto& [name, w, h, x0, y0] : squares) {
    cv::Mat m(h, w, CV_8U, cv::Scalar(0));
    m(cv::Rect(x0, y0, 16, 16)).setTo(255);
    REQUIRE(cv::imwrite(t.file("masks/red/" + name + ".png"), m));
  }
  auto r = run_cli({"-q", "explain", "localize", "--patch-activations", t.file("pa.h5"), "--masks", t.file("masks"),
                    "--latents", "red=1,none=1", "--csv", t.file("loc.csv"), "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto rows = nlohmann::json::parse(r.out)["rows"];
  REQUIRE(rows.size() == 2);
  // Direct: in both images the red latent peaks on the square's patch, the control (latent 0, the
  // only other one) on patch 0, which misses it.
  CHECK(rows[0]["concept"] == "red");
  CHECK(rows[0]["n_images"] == 2);
  CHECK(rows[0]["pointing"] == 1.0);
  CHECK(rows[0]["control_pointing"] == 0.0);
  CHECK(rows[0]["n_patches_pos"] == 2);  // exactly one cell per image holds the square
  CHECK(rows[0]["patch_auroc"] == 1.0);
  CHECK(rows[0]["control_auroc"] == 0.5);  // a constant scores every patch alike
  CHECK(rows[1]["n_images"] == 0);
  CHECK(rows[1]["pointing"].is_null());
  CHECK(rows[1]["patch_auroc"].is_null());
  CHECK(cl::test::read_text(t.file("loc.csv")).find("red,1,2,1.0,0.0,1.0,0.5") != std::string::npos);

  // A masks file: round trip through the library, then an id it lacks.
  {
    cl::explain::MasksWriter w(t.file("m.h5"), {"red"}, 64, 64, {});
    cv::Mat m(64, 64, CV_8U, cv::Scalar(0));
    m(cv::Rect(32, 16, 16, 16)).setTo(200);
    w.append("sq.png", {m});
    w.commit();
  }
  const cl::explain::MaskSource ms(t.file("m.h5"));
  CHECK(ms.concepts() == std::vector<std::string>{"red"});
  CHECK(cv::countNonZero(ms.mask("red", "sq.png", 64, 64)) == 256);
  auto bad = run_cli({"-q", "explain", "localize", "--patch-activations", t.file("pa.h5"), "--masks", t.file("m.h5"),
                      "--latents", "red=1"});
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("m.h5") != std::string::npos);
  CHECK(bad.err.find("wide.png") != std::string::npos);
  // A mask of another size than its image.
  REQUIRE(cv::imwrite(t.file("masks/red/wide.png"), cv::Mat(64, 64, CV_8U, cv::Scalar(255))));
  bad = run_cli({"-q", "explain", "localize", "--patch-activations", t.file("pa.h5"), "--masks", t.file("masks"),
                 "--latents", "red=1"});
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("wide.png") != std::string::npos);
  CHECK(bad.err.find("96 x 64") != std::string::npos);
  // Unknown concept, bad pairs, a latent out of range.
  bad = run_cli({"-q", "explain", "localize", "--patch-activations", t.file("pa.h5"), "--masks", t.file("masks"),
                 "--latents", "blue=1"});
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("blue") != std::string::npos);
  CHECK(run_cli({"-q", "explain", "localize", "--patch-activations", t.file("pa.h5"), "--masks", t.file("masks"),
                 "--latents", "red"}).exit_code == 2);
  CHECK(run_cli({"-q", "explain", "localize", "--patch-activations", t.file("pa.h5"), "--masks", t.file("masks"),
                 "--latents", "red=9"}).exit_code == 2);
}
