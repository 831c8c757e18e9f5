// Intervention experiments: the embedding-space edit equals decoding the removed codes by hand,
// bootstrap intervals and the random control are reproducible from the seed, subgroup scores and
// the worst group are computed per (subgroup, label) cell, and a refit runs on edited rows.
#include "tests/torch_doctest.h"

#include <cmath>
#include <random>

#include "cbm/logreg.h"
#include "core/error.h"
#include "explain/experiment.h"
#include "sae/sae.h"

using namespace cl;

namespace {

SaeWeights random_sae(int64_t d, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  SaeWeights w;
  w.arch = "relu-l1";
  w.d_in = d;
  w.n_latents = n;
  for (int64_t i = 0; i < d * n; ++i) w.W_enc.push_back(float(nd(rng) / std::sqrt(double(d))));
  for (int64_t i = 0; i < n * d; ++i) w.W_dec.push_back(float(nd(rng) / std::sqrt(double(d))));
  for (int64_t i = 0; i < n; ++i) w.b_enc.push_back(-0.2f);
  for (int64_t i = 0; i < d; ++i) w.b_dec.push_back(float(0.1 * nd(rng)));
  return w;
}

struct World {
  CsrMatrix acts;
  std::vector<int> y;
  cbm::LogRegFit model;
  explain::EvalSet set;
};

// Labels depend on latents 0 and 1; a subgroup column tracks latent 0.
World make_world(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  World w;
  w.acts.n_cols = 10;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> c;
    std::vector<float> v;
    for (int32_t j = 0; j < 10; ++j)
      if (rng() % 3 == 0) c.push_back(j), v.push_back(0.2f + float(rng() % 20) / 10.0f);
    w.acts.append_row_sorted(c.data(), v.data(), static_cast<int64_t>(c.size()));
    double s = 0;
    for (size_t q = 0; q < c.size(); ++q) s += (c[q] == 0 ? 1.5 : c[q] == 1 ? -1.0 : 0.1) * v[q];
    w.y.push_back(s + 0.3 * std::normal_distribution<double>()(rng) > 0.3);
  }
  cbm::LogRegParams lp;
  lp.penalty = "l2";
  lp.alpha = 1e-3;
  lp.solver = "lbfgs";
  w.model = cbm::fit_logreg(w.acts, w.y, 2, lp);
  for (int i = 0; i < n; ++i) {
    w.set.rows.push_back(i);
    w.set.y.push_back(w.y[i]);
    bool has0 = false;
    for (auto q = w.acts.indptr[i]; q < w.acts.indptr[i + 1]; ++q) has0 = has0 || w.acts.indices[q] == 0;
    w.set.group.push_back(has0 ? 1 : 0);
  }
  w.set.group_names = {"l0=off", "l0=on"};
  w.set.classes = {"0", "1"};
  return w;
}

}  // namespace

TEST_CASE("embedding-space edit equals decoding the removed codes by hand") {
  const auto w = random_sae(6, 10, 3);
  const sae::Model m(w, Device(torch::kCPU));
  std::mt19937 rng(4);
  std::vector<float> x(20 * 6);
  for (auto& v : x) v = float(std::uniform_real_distribution<double>(0, 2)(rng));
  const CsrMatrix codes = m.encode(x.data(), 20);
  const std::vector<explain::LatentEdit> edits = {{2, explain::EditOp::zero, 0}, {5, explain::EditOp::scale, 0.25}};
  const auto out = explain::edit_embeddings(x.data(), codes, edits, m);
  for (int64_t i = 0; i < 20; ++i)
    for (int64_t d = 0; d < 6; ++d) {
      double want = x[i * 6 + d];
      for (auto q = codes.indptr[i]; q < codes.indptr[i + 1]; ++q) {
        const int32_t j = codes.indices[q];
        const double a = codes.values[q];
        const double removed = j == 2 ? a : j == 5 ? 0.75 * a : 0.0;
        want -= removed * w.W_dec[j * 6 + d];
      }
      CHECK(out[i * 6 + d] == doctest::Approx(want).epsilon(1e-5));
    }
}

TEST_CASE("intervene: reproducible intervals and control, subgroups, flips, refit") {
  const auto w = make_world(400, 7);
  explain::InterveneParams p;
  p.bootstrap = 200;
  p.random_control = 6;
  p.seed = 11;
  const std::vector<explain::LatentEdit> edits = {{0, explain::EditOp::zero, 0}};
  const auto a = explain::intervene(w.acts, w.model, edits, w.set, p);
  const auto b = explain::intervene(w.acts, w.model, edits, w.set, p);
  CHECK(a.before.ci.auroc.lo == b.before.ci.auroc.lo);
  CHECK(a.after.ci.auroc.hi == b.after.ci.auroc.hi);
  REQUIRE(a.control.has_value());
  CHECK(a.control->auroc == b.control->auroc);
  CHECK(a.control->seeds == 6);
  CHECK(a.control->n_latents == 1);
  // Zeroing the latent the label leans on hurts more than zeroing a random one the model uses.
  CHECK(a.after.metrics.auroc < a.before.metrics.auroc - 0.05);
  CHECK(a.after.metrics.auroc < a.control->auroc_summary.lo);
  CHECK(a.n_flipped > 0);
  // Subgroup cells: (subgroup, label); the worst group is their minimum.
  REQUIRE(a.before.groups.size() == 4);
  double worst = 1;
  int64_t total = 0;
  for (const auto& g : a.before.groups) worst = std::min(worst, g.accuracy), total += g.n;
  CHECK(a.before.worst_group_accuracy == worst);
  CHECK(total == 400);
  // Another seed gives other intervals.
  p.seed = 12;
  CHECK(explain::intervene(w.acts, w.model, edits, w.set, p).before.ci.auroc.lo != a.before.ci.auroc.lo);
  // Refit on edited training rows: the refitted model cannot use latent 0 at all.
  p.refit = true;
  std::vector<int64_t> train;
  std::vector<int> train_y;
  for (int i = 0; i < 300; ++i) train.push_back(i), train_y.push_back(w.y[i]);
  explain::EvalSet test = w.set;
  test.rows.assign(w.set.rows.begin() + 300, w.set.rows.end());
  test.y.assign(w.set.y.begin() + 300, w.set.y.end());
  test.group.assign(w.set.group.begin() + 300, w.set.group.end());
  cbm::LogRegParams lp;
  lp.penalty = "l2";
  lp.alpha = 1e-3;
  lp.solver = "lbfgs";
  const auto r = explain::intervene(w.acts, w.model, edits, test, p, train, train_y, lp);
  REQUIRE(r.refit.has_value());
  CHECK(r.refit->metrics.auroc > 0.5);
  p.refit = true;
  CHECK_THROWS_AS(explain::intervene(w.acts, w.model, edits, test, p), UsageError);  // refit without training rows
  p.random_control = 3;
  CHECK_THROWS_AS(explain::validate(p), UsageError);
}

TEST_CASE("intervention curve: k = 0 is the unedited model, points follow the ranking") {
  const auto w = make_world(300, 9);
  const auto c = explain::intervention_curve(w.acts, w.model, w.set, "test", {0, 1, 2}, 5);
  REQUIRE(c.size() == 4);  // k = 0..3: the ranking has 3 latents
  const auto base = cbm::evaluate(w.set.y, cbm::predict_proba(w.acts, w.model, w.set.rows), 2);
  CHECK(c[0].auroc == doctest::Approx(base.auroc));
  CHECK(c[1].auroc < c[0].auroc);  // latent 0 carries the label
  CHECK(c[3].k == 3);
}
