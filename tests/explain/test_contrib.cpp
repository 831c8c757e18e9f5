// Global and local explanations: local contributions sum exactly to the logit minus the bias for
// every class (binary and multiclass), global means are over each class's images, importance
// ranks order by |weight|.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "cbm/logreg.h"
#include "explain/contrib.h"

using namespace cl;

namespace {
CsrMatrix acts_for(uint32_t seed) {
  std::mt19937 rng(seed);
  CsrMatrix m;
  m.n_cols = 8;
  for (int i = 0; i < 40; ++i) {
    std::vector<int32_t> c;
    std::vector<float> v;
    for (int32_t j = 0; j < 8; ++j)
      if (rng() % 2) c.push_back(j), v.push_back(0.5f + float(rng() % 10) / 4.0f);
    m.append_row_sorted(c.data(), v.data(), static_cast<int64_t>(c.size()));
  }
  return m;
}
cbm::LogRegFit model(int C, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  cbm::LogRegFit m;
  m.n_classes = C;
  m.n_rows = C == 2 ? 1 : C;
  m.n_features = 8;
  for (int64_t q = 0; q < m.n_rows * 8; ++q) m.weights.push_back(q % 3 == 0 ? 0.0 : nd(rng));
  for (int64_t k = 0; k < m.n_rows; ++k) m.bias.push_back(nd(rng));
  return m;
}
}  // namespace

TEST_CASE("local contributions sum to the logit minus the bias") {
  const auto acts = acts_for(1);
  for (int C : {2, 3}) {
    const auto m = model(C, 5 + C);
    std::vector<std::string> classes;
    for (int k = 0; k < C; ++k) classes.push_back("c" + std::to_string(k));
    const auto proba = cbm::predict_proba(acts, m);
    for (int64_t row : {0, 7, 39}) {
      const auto l = explain::local_explanation(m, classes, acts, row);
      REQUIRE(static_cast<int>(l.size()) == C);
      double psum = 0;
      for (int k = 0; k < C; ++k) {
        double s = 0;
        for (const auto& t : l[k].terms) s += t.mean_contribution;
        CHECK(s == doctest::Approx(l[k].logit - l[k].bias).epsilon(1e-12));
        CHECK(l[k].probability == doctest::Approx(proba[row * C + k]));
        for (size_t i = 1; i < l[k].terms.size(); ++i)
          CHECK(std::abs(l[k].terms[i - 1].mean_contribution) >= std::abs(l[k].terms[i].mean_contribution));
        psum += l[k].probability;
      }
      CHECK(psum == doctest::Approx(1.0));
      if (C == 2) CHECK(l[0].logit == -l[1].logit);
    }
  }
}

TEST_CASE("global explanations: weights, class means and importance ranks") {
  const auto acts = acts_for(2);
  const auto m = model(3, 9);
  std::vector<int> y;
  for (int i = 0; i < 40; ++i) y.push_back(i % 3);
  const auto g = explain::global_explanations(m, {"a", "b", "c"}, acts, y, 3);
  REQUIRE(g.size() == 3);
  const auto rank = explain::importance_ranks(m);
  for (int k = 0; k < 3; ++k) {
    CHECK(g[k].by_weight.size() <= 3);
    for (size_t i = 1; i < g[k].by_weight.size(); ++i) CHECK(g[k].by_weight[i - 1].weight >= g[k].by_weight[i].weight);
    for (const auto& t : g[k].by_contribution) {
      double s = 0;
      int n = 0;
      for (int i = 0; i < 40; ++i) {
        if (y[i] != k) continue;
        ++n;
        for (auto q = acts.indptr[i]; q < acts.indptr[i + 1]; ++q)
          if (acts.indices[q] == t.latent) s += acts.values[q];
      }
      CHECK(t.mean_activation == doctest::Approx(s / n));
      CHECK(t.mean_contribution == doctest::Approx(t.weight * s / n));
      CHECK(t.importance_rank == rank[t.latent]);
    }
  }
  // Ranks: 1 for the largest max_k |w|, 0 for unused latents.
  double top = 0;
  int64_t top_j = -1;
  for (int64_t j = 0; j < 8; ++j)
    for (int64_t k = 0; k < 3; ++k)
      if (std::abs(m.weights[k * 8 + j]) > top) top = std::abs(m.weights[k * 8 + j]), top_j = j;
  CHECK(rank[top_j] == 1);
}
