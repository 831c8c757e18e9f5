// Protocols: the averaged model of repeated splits, independence from the thread count, fixed
// splits with alpha tuning, probe regularisation, and the config JSON mirrors.
#include <doctest/doctest.h>

#include <fstream>
#include <random>

#include "cbm/protocol.h"
#include "core/error.h"
#include "tests/test_util.h"

using namespace cl;
using namespace cl::cbm;

namespace {
Dataset synthetic(int n, int F, int C, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> U(0, 1);
  std::normal_distribution<double> N(0, 1);
  std::vector<double> W(size_t(C) * F);
  for (auto& w : W) w = 2 * N(rng);
  Dataset d;
  d.X.n_cols = F;
  for (int i = 0; i < n; ++i) {
    std::vector<double> z(C, 0.0);
    for (int j = 0; j < F; ++j)
      if (U(rng) < 0.3) {
        float v = float(U(rng) * 2);
        d.X.indices.push_back(j), d.X.values.push_back(v);
        for (int k = 0; k < C; ++k) z[k] += W[size_t(k) * F + j] * v;
      }
    d.X.indptr.push_back(int64_t(d.X.indices.size()));
    d.X.n_rows++;
    for (auto& v : z) v += N(rng);
    d.y.push_back(int(std::max_element(z.begin(), z.end()) - z.begin()));
    d.ids.push_back("img" + std::to_string(i));
  }
  for (int k = 0; k < C; ++k) d.classes.push_back("c" + std::to_string(k));
  d.labels_path = "synthetic.csv";
  d.label_col = "y";
  d.features_kind = "activations";
  return d;
}
}  // namespace

TEST_CASE("protocol: the saved model is the mean of the split fits, and the thread count does not matter") {
  for (int C : {2, 3}) {
    auto d = synthetic(200, 30, C, 10 + C);
    ProtocolParams p;
    p.splits = 4;
    p.seed = 3;
    p.model.alpha = 2e-3;
    p.threads = 1;
    auto r1 = run_repeated_splits(d, p);
    p.threads = 3;
    auto r3 = run_repeated_splits(d, p);
    CHECK(r1.model.weights == r3.model.weights);
    CHECK(r1.report.auroc.mean == r3.report.auroc.mean);
    CHECK(r1.to_json()["per_split"] == r3.to_json()["per_split"]);

    std::vector<double> mean_w(r1.model.weights.size(), 0.0), mean_b(r1.model.bias.size(), 0.0);
    std::vector<double> aurocs;
    for (int s = 0; s < p.splits; ++s) {
      auto sp = stratified_split(d.y, C, p.test_size, p.seed + s, "t");
      auto f = fit_logreg(d.X, d.y, C, p.model, sp.train);
      for (size_t q = 0; q < mean_w.size(); ++q) mean_w[q] += f.weights[q] / p.splits;
      for (size_t q = 0; q < mean_b.size(); ++q) mean_b[q] += f.bias[q] / p.splits;
      std::vector<int> yt;
      for (auto r : sp.test) yt.push_back(d.y[r]);
      aurocs.push_back(auroc_multi(yt, predict_proba(d.X, f, sp.test), C));
    }
    for (size_t q = 0; q < mean_w.size(); ++q) CHECK(r1.model.weights[q] == doctest::Approx(mean_w[q]).epsilon(1e-12));
    for (size_t q = 0; q < mean_b.size(); ++q) CHECK(r1.model.bias[q] == doctest::Approx(mean_b[q]).epsilon(1e-12));
    CHECK(r1.report.auroc.mean == doctest::Approx(summarize(aurocs).mean));
    CHECK(r1.report.auroc.mean > 0.75);
    CHECK(r1.splits.size() == 4);
    CHECK(r1.to_json()["per_split"]["auroc"].size() == 4);
  }
}

TEST_CASE("protocol: fixed split with alpha tuned on validation rows") {
  auto d = synthetic(300, 40, 2, 5);
  std::vector<int64_t> train, valid, test;
  for (int64_t i = 0; i < 300; ++i) (i % 5 == 0 ? test : i % 5 == 1 ? valid : train).push_back(i);
  ProtocolParams p;
  p.tune = "alpha";
  p.tune_alphas = {1.0, 1e-2, 1e-3};
  auto r = run_fixed_split(d, train, valid, test, p);
  const auto& t = r.report.tuning;
  REQUIRE(t.size() == 3);
  // alpha = 1 zeroes every weight (AUROC 0.5); the chosen alpha has the best validation AUROC.
  CHECK(t[0].nnz == 0);
  double best = 0, best_alpha = 0;
  for (auto& e : t)
    if (e.valid_auroc > best) best = e.valid_auroc, best_alpha = e.alpha;
  CHECK(r.report.alpha == best_alpha);
  CHECK(r.report.test.auroc > 0.7);
  const auto j = r.to_json();
  CHECK(j["tuning"].size() == 3);
  CHECK(j["test"]["auroc"].get<double>() == r.report.test.auroc);
  CHECK_THROWS_AS(run_fixed_split(d, train, {}, test, p), UsageError);  // tuning without validation rows
}

TEST_CASE("probe: panderm lambda maps to alpha = M*C/100 / n_train") {
  CHECK(panderm_alpha(1024, 2, 800) == doctest::Approx(1024.0 * 2 / 100 / 800));
  auto d = synthetic(150, 20, 3, 9);
  ProbeParams p;
  p.splits = 2;
  auto r = run_probe_panderm(d, p, {}, {});
  CHECK(r.report.lambda == doctest::Approx(20.0 * 3 / 100));
  CHECK(r.report.auroc.mean > 0.6);
  p.shots = {1, 4};
  p.seeds = 2;
  auto k = run_probe_kshot(d, p);
  REQUIRE(k.size() == 2);
  CHECK(k[0].k == 1);
  CHECK(k[1].accuracy.mean > 0.34);
  CHECK(to_json(k)[1]["accuracy"]["mean"].get<double>() == k[1].accuracy.mean);
}
