// Demo world: label/artifact correlation structure, determinism, concept recoverability from
// the demo encoder's embeddings (probe AUROC >= 0.9 per flag), and the demo commands.
#include "tests/embed/torch_doctest.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <random>

#include <fmt/format.h>
#include <fstream>

#include "core/csv.h"
#include "cbm/metrics.h"
#include "core/embeddings.h"
#include "tests/test_util.h"
#include "tools/demo/demo.h"
#include "tools/demo/probe.h"
#include "tools/demo/world.h"

namespace fs = std::filesystem;
using namespace cl::demo;
using cl::test::TempDir;

namespace {

size_t concept_index(const std::string& name) {
  auto names = concept_names();
  return std::find(names.begin(), names.end(), name) - names.begin();
}

// P(flag | split, malignant) from the drawn world.
double rate(const std::vector<DemoImage>& w, const std::string& flag, const std::string& split, int malignant) {
  const size_t k = concept_index(flag);
  double n = 0, f = 0;
  for (auto& im : w)
    if (im.split == split && static_cast<int>(im.malignant) == malignant) n += 1, f += im.flags[k];
  return f / n;
}

}  // namespace

TEST_CASE("demo world: hair is tied to malignancy in train only and labels follow the structure rule") {
  DemoWorldParams p;
  p.n = 20000;
  auto w = draw_world(p);
  REQUIRE(w.size() == 20000u);
  CHECK(rate(w, "hair", "train", 1) == doctest::Approx(0.8).epsilon(0.05));
  CHECK(rate(w, "hair", "train", 0) == doctest::Approx(0.2).epsilon(0.1));
  CHECK(rate(w, "hair", "test", 1) == doctest::Approx(0.5).epsilon(0.06));
  CHECK(rate(w, "hair", "test", 0) == doctest::Approx(0.5).epsilon(0.06));
  for (std::string a : {"ruler", "ink", "gel_bubble", "dark_corner"})
    for (std::string s : {"train", "test"}) {
      INFO(a << " " << s);
      CHECK(std::abs(rate(w, a, s, 1) - rate(w, a, s, 0)) < 0.04);
      CHECK(rate(w, a, s, 1) == doctest::Approx(0.3).epsilon(0.15));
    }
  // The label depends on structures: noise-free rule agreement ~ 1 - label_noise, and each
  // structure raises P(malignant).
  double agree = 0, n_train = 0;
  for (auto& im : w) agree += im.malignant == im.malignant_by_rule, n_train += im.split == "train";
  CHECK(agree / w.size() == doctest::Approx(0.9).epsilon(0.02));
  CHECK(n_train / w.size() == doctest::Approx(0.7).epsilon(0.03));
  for (const auto& s : structure_names()) {
    const size_t k = concept_index(s);
    double m1 = 0, n1 = 0, m0 = 0, n0 = 0;
    for (auto& im : w) (im.flags[k] ? (m1 += im.malignant, n1 += 1) : (m0 += im.malignant, n0 += 1));
    INFO(s);
    CHECK(m1 / n1 > m0 / n0 + 0.1);
  }
  // The rule itself.
  CHECK(checklist_score({1, 0, 0, 1, 0, 0, 0}) == 4);
  CHECK(checklist_score({0, 1, 1, 0, 1, 1, 0}) == 4);
  CHECK(checklist_score({0, 1, 1, 0, 1, 0, 0}) == 3);

  // Configurable strength; same seed -> same world.
  p.hair_p_malignant_train = 0.5;
  p.hair_p_benign_train = 0.5;
  auto w2 = draw_world(p);
  CHECK(std::abs(rate(w2, "hair", "train", 1) - rate(w2, "hair", "train", 0)) < 0.04);
  auto w3 = draw_world(p);
  CHECK(w3[123].flags == w2[123].flags);
  CHECK(w3[123].render_seed == w2[123].render_seed);
}

TEST_CASE("demo images render deterministically and differ by flags") {
  DemoWorldParams p;
  p.n = 4;
  auto w = draw_world(p);
  cv::Mat a = render_image(w[0], 224), b = render_image(w[0], 224);
  REQUIRE(a.size() == cv::Size(224, 224));
  CHECK(cv::norm(a, b, cv::NORM_INF) == 0);
  DemoImage hairy = w[0], bare = w[0];
  std::fill(bare.flags.begin(), bare.flags.end(), 0);
  hairy.flags = bare.flags;
  hairy.flags[concept_index("hair")] = 1;
  CHECK(cv::norm(render_image(hairy, 224), render_image(bare, 224), cv::NORM_L1) > 1000);
}

TEST_CASE("probe helpers: AUROC with ties and a ridge probe on a linear concept") {
  CHECK(cl::cbm::auroc({0.1, 0.2, 0.3, 0.4}, {0, 0, 1, 1}) == 1.0);
  CHECK(cl::cbm::auroc({0.4, 0.3, 0.2, 0.1}, {0, 0, 1, 1}) == 0.0);
  CHECK(cl::cbm::auroc({0.5, 0.5, 0.5, 0.5}, {0, 1, 0, 1}) == 0.5);
  CHECK(cl::cbm::auroc({0.1, 0.5, 0.5, 0.9}, {0, 0, 1, 1}) == doctest::Approx(0.875));
  CHECK(std::isnan(cl::cbm::auroc({0.1, 0.2}, {1, 1})));
  std::vector<float> xtr, xte;
  std::vector<int> ytr, yte;
  for (int i = 0; i < 200; ++i) {
    int y = i % 2;
    float noise = static_cast<float>((i * 37) % 11) / 11.0f;
    (i < 150 ? xtr : xte).insert((i < 150 ? xtr : xte).end(), {y + noise * 0.5f, noise, 1.0f - noise});
    (i < 150 ? ytr : yte).push_back(y);
  }
  CHECK(cl::cbm::auroc(ridge_probe_scores(xtr, ytr, xte, 3, 1.0), yte) > 0.95);
}

TEST_CASE("demo encoder embeddings carry every concept: probe AUROC >= 0.9 per flag (n=600)") {
  TempDir t;
  DemoWorldParams p;
  p.n = 600;
  auto world = generate_demo_world(p, t.path.string(), true);
  CHECK(world.n == 600);
  CHECK(fs::exists(world.encoder_path));
  auto pre = cl::embed::load_preprocess(world.encoder_json);
  cl::embed::EmbedParams ep;
  ep.model = world.encoder_path;
  ep.csv = world.meta_csv;
  ep.image_root = world.images_dir;
  ep.out = t.file("e.h5");
  ep.batch = 50;
  auto rep = cl::embed::embed_images(ep, pre, torch::Device(torch::kCPU));
  CHECK(rep.n_rows == 600);
  auto e = cl::read_embeddings(ep.out);
  auto q = quick_check(e);
  REQUIRE(q.concept_auroc.size() == 12u);
  for (auto& [name, auc] : q.concept_auroc) {
    INFO(name << " AUROC " << auc);
    CHECK(auc >= 0.9);
  }
  // Planted bias in train (~0.6), none by construction in test (sampling noise only at n~170).
  CHECK(q.hair_malignant_corr_train > 0.45);
  CHECK(q.hair_malignant_corr_train - q.hair_malignant_corr_test > 0.3);
}

TEST_CASE("demo-data and demo commands") {
  TempDir t;
  auto r = cl::test::run_cli({"-q", "demo-data", "--out", t.file("w"), "--n", "30", "--seed", "3", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["n"] == 30);
  auto meta = cl::read_csv(t.file("w/meta.csv"));
  CHECK(meta.n_rows() == 30);
  CHECK(meta.header.size() == 4 + 12);
  CHECK(meta.has_col("hair"));
  CHECK(meta.has_col("multiple_colours"));
  for (auto& id : meta.column("ImageID")) CHECK(fs::exists(t.file("w/images/" + id)));
  for (auto& v : meta.column("label")) CHECK((v == "benign" || v == "malignant"));
  auto pre = cl::embed::load_preprocess(t.file("w/encoder.json"));
  CHECK(pre.image_size == 128);
  // Same seed, same metadata.
  REQUIRE(cl::test::run_cli({"-q", "demo-data", "--out", t.file("w2"), "--n", "30", "--seed", "3"}).exit_code == 0);
  CHECK(cl::test::read_text(t.file("w/meta.csv")) == cl::test::read_text(t.file("w2/meta.csv")));
  CHECK(cl::test::run_cli({"demo-data", "--out", t.file("w3"), "--hair-malignant", "1.5"}).exit_code == 2);

  auto d = cl::test::run_cli(
      {"-q", "demo", "--out", t.file("d"), "--n", "120", "--device", "cpu", "--sae-epochs", "5", "--json"});
  INFO(d.err);
  REQUIRE(d.exit_code == 0);
  auto dj = nlohmann::json::parse(d.out);
  CHECK(dj["embed"]["n_rows"] == 120);
  CHECK(dj["check"]["concept_auroc"].size() == 12);
  for (auto f : {"embeddings.h5", "sae.h5", "activations.h5", "report.json"}) CHECK(fs::exists(t.file("d") + "/" + f));
  const auto& sae = dj["sae"]["metrics"];
  CHECK(sae["n"] == 120);
  CHECK(sae["fvu"].get<double>() < 1.0);
  CHECK(sae["l0"].get<double>() == doctest::Approx(16).epsilon(1e-6));  // topk, k = 16
  REQUIRE(dj["concept_latents"].size() == 12);
  for (auto& m : dj["concept_latents"]) {
    CHECK(m["latent"].get<int64_t>() >= 0);
    CHECK(m["latent"].get<int64_t>() < sae["n_latents"].get<int64_t>());
    CHECK(m["auroc"].get<double>() >= 0.5);  // the best latent is never worse than chance
  }
  CHECK(dj["cbm"]["report"]["n_test"].get<int64_t>() + dj["cbm"]["report"]["n_train"].get<int64_t>() == 120);
  CHECK(dj["probe"]["report"]["n_test"] == dj["cbm"]["report"]["n_test"]);
  CHECK(nlohmann::json::parse(cl::test::read_text(t.file("d/report.json"))) == dj);
  // Bad usage leaves no output behind.
  CHECK(cl::test::run_cli({"-q", "demo", "--out", t.file("e"), "--n", "50", "--sae-arch", "nope"}).exit_code == 2);
}

TEST_CASE("latent_aurocs equals the dense AUROC of every latent column, zeros tied") {
  std::mt19937 rng(5);
  const int64_t n = 200, L = 7;
  cl::CsrMatrix a;
  a.n_cols = L;
  std::vector<std::vector<double>> dense(L, std::vector<double>(n, 0.0));
  std::vector<int> y1(n), y2(n);
  for (int64_t i = 0; i < n; ++i) {
    y1[i] = rng() % 2;
    y2[i] = rng() % 5 == 0;
    std::vector<int32_t> cols;
    std::vector<float> vals;
    for (int32_t j = 0; j < L; ++j) {
      // About two thirds zeros; latent 3 fires on every y1 image and a third of the others.
      if (j == 3 ? !(y1[i] || rng() % 3 == 0) : rng() % 3 != 0) continue;
      // Few distinct values so non-zero ties occur too; latent 3 leans on y1.
      float v = 0.5f * float(1 + rng() % 4) + (j == 3 && y1[i] ? 1.0f : 0.0f);
      cols.push_back(j);
      vals.push_back(v);
      dense[j][i] = v;
    }
    a.append_row_sorted(cols.data(), vals.data(), static_cast<int64_t>(cols.size()));
  }
  const auto got = latent_aurocs(a, {y1, y2});
  REQUIRE(got.size() == 2);
  for (int j = 0; j < L; ++j) {
    CHECK(got[0][j] == doctest::Approx(cl::cbm::auroc(dense[j], y1)).epsilon(1e-12));
    CHECK(got[1][j] == doctest::Approx(cl::cbm::auroc(dense[j], y2)).epsilon(1e-12));
  }
  CHECK(got[0][3] > 0.7);
  // One class absent: NaN, as cbm::auroc.
  CHECK(std::isnan(latent_aurocs(a, {std::vector<int>(n, 1)})[0][0]));
}

TEST_CASE("configs/demo.json mirrors the DemoParams defaults") {
  std::ifstream in(fs::path(CONCEPTLAB_SOURCE_DIR) / "configs" / "demo.json");
  REQUIRE(in);
  auto j = nlohmann::json::parse(in);
  CHECK(j == nlohmann::json(DemoParams{}));
  CHECK(nlohmann::json(j.get<DemoParams>()) == nlohmann::json(DemoParams{}));
}

TEST_CASE("configs/demo-data.json mirrors the DemoWorldParams defaults") {
  std::ifstream in(fs::path(CONCEPTLAB_SOURCE_DIR) / "configs" / "demo-data.json");
  REQUIRE(in);
  auto j = nlohmann::json::parse(in);
  CHECK(j == nlohmann::json(DemoWorldParams{}));
  CHECK(nlohmann::json(j.get<DemoWorldParams>()) == nlohmann::json(DemoWorldParams{}));
}
