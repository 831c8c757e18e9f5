// SAE sweeps: the grid expands and validates as documented, the Pareto front and the pick follow
// their rule, and a sweep on embeddings with planted concepts scores each SAE on rows it never
// trained on: the best latent is chosen on the training rows and its reported AUROC is that
// latent's AUROC on the held-out rows (recomputed here from the saved SAE).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <set>

#include <opencv2/imgcodecs.hpp>

#include "cbm/metrics.h"
#include "core/csv.h"
#include "core/error.h"
#include "core/params.h"
#include "core/sae_weights.h"
#include "explain/sweep.h"
#include "tests/test_util.h"

using namespace cl;
namespace fs = std::filesystem;

namespace {

// n rows in d dims: 4 planted concepts (random unit directions, each present with p 0.3, scaled
// 1..1.5) plus small noise; the labels are the concepts, and a fifth column with 2 positives only.
struct Planted {
  std::vector<float> x;
  std::vector<std::string> ids;
  explain::Annotations ann;
};

Planted make_planted(int64_t n, int64_t d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  const int C = 4;
  std::vector<std::vector<float>> dirs(C, std::vector<float>(static_cast<size_t>(d)));
  for (auto& v : dirs) {
    float s = 0;
    for (auto& e : v) e = g(rng), s += e * e;
    for (auto& e : v) e /= std::sqrt(s);
  }
  Planted p;
  p.x.assign(static_cast<size_t>(n * d), 0.0f);
  p.ann.names = {"a", "b", "c", "d", "rare"};
  p.ann.labels.assign(5, explain::ConceptLabels(static_cast<size_t>(n), 0));
  for (int64_t i = 0; i < n; ++i) {
    p.ids.push_back("img_" + std::to_string(i));
    for (int c = 0; c < C; ++c) {
      const bool on = u(rng) < 0.3f;
      p.ann.labels[static_cast<size_t>(c)][static_cast<size_t>(i)] = on;
      if (!on) continue;
      const float s = 1.0f + 0.5f * u(rng);
      for (int64_t j = 0; j < d; ++j) p.x[static_cast<size_t>(i * d + j)] += s * dirs[static_cast<size_t>(c)][static_cast<size_t>(j)];
    }
    for (int64_t j = 0; j < d; ++j) p.x[static_cast<size_t>(i * d + j)] += 0.05f * g(rng);
    p.ann.labels[4][static_cast<size_t>(i)] = i < 2;
  }
  p.ann.n_joined = n;
  return p;
}

explain::SweepEntry entry(const std::string& label, double fvu, double auroc, double dead = 0.0) {
  explain::SweepEntry e;
  e.label = label;
  e.sae_path = label + ".h5";
  e.heldout.fvu = fvu;
  e.heldout.dead_fraction = dead;
  e.mean_auroc = auroc;
  return e;
}

}  // namespace

TEST_CASE("sweep grid: the product of the lists, prefixes only for matryoshka, errors name the key") {
  const sae::TrainParams base;
  auto g = explain::expand_grid(nlohmann::json::parse(R"({"arch": ["topk", "matryoshka-topk"], "k": [8, 16],
                                                          "prefixes": [[], [16, 64]], "comment": "x"})"),
                                base, "g.json");
  // topk ignores prefixes (2 points, not 4); matryoshka keeps both: 2 + 4.
  CHECK(g.size() == 6);
  std::set<std::string> seen;
  for (const auto& p : g) {
    CHECK(p.epochs == base.epochs);
    if (p.arch == "topk") CHECK(p.prefixes.empty());
    seen.insert(nlohmann::json(p).dump());
  }
  CHECK(seen.size() == 6);
  const auto labels = explain::sweep_labels(g, 64);
  CHECK(labels[0] == "topk n512 k8");
  CHECK(std::find(labels.begin(), labels.end(), "matryoshka-topk n512 k16 p16,64") != labels.end());
  CHECK(std::find(labels.begin(), labels.end(), "matryoshka-topk n512 k16 p16,64,256") != labels.end());
  // Any other field that varies is named in the label.
  auto g2 = explain::expand_grid(nlohmann::json::parse(R"({"lr": [0.001, 0.0001]})"), base, "g.json");
  CHECK(explain::sweep_labels(g2, 64)[1] == "topk n512 k32 lr=0.0001");

  CHECK_THROWS_WITH_AS(explain::expand_grid(nlohmann::json::parse(R"({"kk": [1]})"), base, "g.json"),
                       doctest::Contains("'kk' is not an SAE training field"), UsageError);
  CHECK_THROWS_WITH_AS(explain::expand_grid(nlohmann::json::parse(R"({"k": 16})"), base, "g.json"),
                       doctest::Contains("'k' must be a non-empty list"), UsageError);
  CHECK_THROWS_WITH_AS(explain::expand_grid(nlohmann::json::parse(R"({"k": []})"), base, "g.json"),
                       doctest::Contains("non-empty list"), UsageError);
  CHECK_THROWS_WITH_AS(explain::expand_grid(nlohmann::json::parse(R"({"k": ["many"]})"), base, "g.json"),
                       doctest::Contains("g.json"), UsageError);
  CHECK_THROWS_WITH_AS(explain::expand_grid(nlohmann::json::parse(R"({"k": [0]})"), base, "g.json"),
                       doctest::Contains("k 0"), UsageError);
  CHECK_THROWS_AS(explain::expand_grid(nlohmann::json::array(), base, "g.json"), UsageError);
  CHECK_THROWS_AS(explain::expand_grid(nlohmann::json::object(), base, "g.json"), UsageError);
}

TEST_CASE("sweep pick: the most aligned SAE on the Pareto front within the FVU and dead limits") {
  explain::SweepParams p;
  p.max_fvu = 0.1;
  p.max_dead = 0.5;
  explain::SweepResult r;
  r.entries = {entry("lowfvu", 0.01, 0.60), entry("dominated", 0.05, 0.62), entry("mid", 0.03, 0.70),
               entry("high_fvu", 0.20, 0.80), entry("dead", 0.04, 0.75, 0.9), entry("unscored", 0.001, NAN)};
  explain::pick_sae(r, p);
  CHECK(r.entries[0].pareto);
  CHECK_FALSE(r.entries[1].pareto);  // "mid" reconstructs better and aligns better
  CHECK(r.entries[2].pareto);
  CHECK(r.entries[3].pareto);
  CHECK(r.entries[4].pareto);
  CHECK_FALSE(r.entries[5].pareto);  // no alignment figure: not on the front
  CHECK(r.pick == 2);                // high_fvu is over max_fvu, dead is over max_dead
  CHECK(r.why.find("mid") == 0);
  CHECK(r.why.find("unscored") != std::string::npos);  // names the best reconstruction it passed over

  p.max_fvu = 0.5;
  explain::pick_sae(r, p);
  CHECK(r.pick == 3);
  // Nothing within the limits: the lowest FVU, and the message says why.
  p.max_fvu = 0.001;
  explain::pick_sae(r, p);
  CHECK(r.pick == 5);
  CHECK(r.why.find("no SAE on the Pareto front") != std::string::npos);
}

TEST_CASE("sweep on planted concepts: held-out scores, best latent chosen on the training rows, outputs") {
  test::TempDir tmp;
  const int64_t n = 500, d = 16;
  const auto pl = make_planted(n, d, 7);
  explain::SweepData data{pl.x.data(), n, d, pl.ids, pl.ann, "planted.h5"};
  explain::SweepParams p;
  p.train.arch = "batchtopk";  // sparsity follows the number of concepts present (0 to 4)
  p.train.n_latents = 16;
  p.train.k = 2;
  p.train.pre_bias_init = "zero";
  p.train.batch = 64;
  p.train.lr = 3e-3;
  p.train.epochs = 150;
  p.train.checkpoint_every = 0;
  p.holdout = 0.25;
  // Untrained against trained: the pick must be the trained one.
  const auto grid = explain::expand_grid(nlohmann::json::parse(R"({"epochs": [0, 150]})"), p.train, "g.json");
  REQUIRE(grid.size() == 2);
  const auto r = explain::sweep_saes(data, grid, p, Device(c10::kCPU), tmp.path.string());
  CHECK(r.n_test == 125);
  CHECK(r.n_train == 375);
  REQUIRE(r.heldout_ids.size() == 125);
  REQUIRE(r.entries.size() == 2);
  std::set<std::string> held(r.heldout_ids.begin(), r.heldout_ids.end());
  CHECK(held.size() == 125);

  const auto& trained = r.entries[1];
  CHECK(trained.heldout.n == 125);
  CHECK(trained.heldout.fvu < r.entries[0].heldout.fvu);
  CHECK(trained.heldout.fvu < 0.2);
  CHECK(trained.mean_auroc > 0.9);
  CHECK(trained.mean_auroc > r.entries[0].mean_auroc);
  CHECK(r.pick == 1);
  CHECK(std::isfinite(r.mean_probe_auroc));
  CHECK(r.mean_probe_auroc > 0.9);
  // The SAE file trained on the training rows only.
  const SaeWeights w = read_sae(trained.sae_path);
  CHECK(w.config["n_train"].get<int64_t>() == 375);

  // The column with 2 positives is not scored (NaN, with a note) and not part of the mean.
  REQUIRE(trained.columns.size() == 5);
  CHECK(std::isnan(trained.columns[4].auroc));
  CHECK(trained.columns[4].note.find("too few") != std::string::npos);

  // Recompute the reported AUROC of each column's best latent on the held-out rows only.
  const sae::Model model(w, Device(c10::kCPU));
  const CsrMatrix acts = model.encode(pl.x.data(), n);
  double mean = 0;
  for (int c = 0; c < 4; ++c) {
    const auto& s = trained.columns[static_cast<size_t>(c)];
    CAPTURE(c);
    REQUIRE(s.best_latent >= 0);
    std::vector<double> score;
    std::vector<int> y;
    for (int64_t i = 0; i < n; ++i) {
      if (!held.count(pl.ids[static_cast<size_t>(i)])) continue;
      double v = 0;
      for (int64_t q = acts.indptr[i]; q < acts.indptr[i + 1]; ++q)
        if (acts.indices[static_cast<size_t>(q)] == s.best_latent) v = acts.values[static_cast<size_t>(q)];
      score.push_back(v), y.push_back(pl.ann.labels[static_cast<size_t>(c)][static_cast<size_t>(i)]);
    }
    CHECK(s.auroc == doctest::Approx(cbm::auroc(score, y)).epsilon(1e-9));
    CHECK(s.n_test == 125);
    CHECK(s.set_auroc > 0.9);
    CHECK(s.latent_set.size() <= 5);
    mean += s.auroc / 4;
  }
  CHECK(trained.mean_auroc == doctest::Approx(mean).epsilon(1e-12));

  // Same seed, same split and the same SAEs (CPU is reproducible).
  test::TempDir tmp2;
  const auto r2 = explain::sweep_saes(data, grid, p, Device(c10::kCPU), tmp2.path.string());
  CHECK(r2.heldout_ids == r.heldout_ids);
  CHECK(r2.entries[1].heldout.fvu == doctest::Approx(trained.heldout.fvu).epsilon(1e-9));

  explain::write_sweep_outputs(r, p, tmp.path.string(), {});
  const CsvTable t = read_csv(tmp.file("sweep.csv"));
  CHECK(t.n_rows() == 2);
  CHECK(t.has_col("auroc:a"));
  CHECK(t.has_col("set_auroc:rare"));
  CHECK(t.rows[1][t.col("picked")] == "1");
  CHECK(read_csv(tmp.file("heldout.csv")).n_rows() == 125);
  const auto j = load_json_file(tmp.file("sweep.json"));
  CHECK(j["format"] == "conceptlab.sae_sweep");
  CHECK(j["schema_version"] == 1);
  CHECK(j["pick"]["sae"] == "sae_01.h5");
  CHECK(j["entries"][1]["columns"][4]["auroc"].is_null());
  CHECK(fs::exists(tmp.file("sae_00.h5")));
  CHECK_FALSE(fs::exists(tmp.file("sae_01.h5.ckpt")));
  const cv::Mat png = cv::imread(tmp.file("sweep.png"));
  CHECK(png.cols > 400);

  // Too few rows for a split.
  explain::SweepData tiny{pl.x.data(), 2, d, {"x", "y"}, {}, "tiny.h5"};
  CHECK_THROWS_WITH_AS(explain::sweep_saes(tiny, grid, p, Device(c10::kCPU), tmp.path.string()),
                       doctest::Contains("tiny.h5"), InputError);
  // A grid size that does not fit these embeddings is refused before any training.
  auto big_k = grid;
  big_k[0].k = 64;
  CHECK_THROWS_WITH_AS(explain::sweep_saes(data, big_k, p, Device(c10::kCPU), tmp.path.string()),
                       doctest::Contains("k 64 > n_latents 16"), UsageError);
}
