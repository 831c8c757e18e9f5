// Interventions: edited logits computed as a sparse delta equal a full recompute on edited
// activations (binary and multiclass, every edit kind), and apply_edits does what each op says.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "cbm/logreg.h"
#include "core/error.h"
#include "explain/intervention.h"

using namespace cl;

namespace {

CsrMatrix random_acts(int64_t n, int32_t L, uint32_t seed) {
  std::mt19937 rng(seed);
  CsrMatrix m;
  m.n_cols = L;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int32_t> c;
    std::vector<float> v;
    for (int32_t j = 0; j < L; ++j)
      if (rng() % 3 == 0) c.push_back(j), v.push_back(0.1f + float(rng() % 100) / 25.0f);
    m.append_row_sorted(c.data(), v.data(), static_cast<int64_t>(c.size()));
  }
  return m;
}

cbm::LogRegFit random_model(int n_classes, int64_t F, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0, 1);
  cbm::LogRegFit m;
  m.n_classes = n_classes;
  m.n_rows = n_classes == 2 ? 1 : n_classes;
  m.n_features = F;
  for (int64_t q = 0; q < m.n_rows * F; ++q) m.weights.push_back(rng() % 4 == 0 ? 0.0 : nd(rng));
  for (int64_t k = 0; k < m.n_rows; ++k) m.bias.push_back(nd(rng));
  return m;
}

}  // namespace

TEST_CASE("edited logits (sparse delta) equal a full recompute on edited activations") {
  const auto acts = random_acts(200, 12, 3);
  const std::vector<int64_t> rows = {0, 5, 7, 19, 100, 199, 42};
  const auto means = explain::latent_means(acts, rows);
  const std::vector<explain::LatentEdit> edits = {{1, explain::EditOp::zero, 0},
                                                  {4, explain::EditOp::scale, 2.5},
                                                  {7, explain::EditOp::clamp, 1.75},
                                                  {9, explain::EditOp::mean, 0}};
  for (int C : {2, 4}) {
    CAPTURE(C);
    const auto m = random_model(C, 12, 11 + C);
    for (const auto& which : {rows, std::vector<int64_t>{}}) {
      const auto base = cbm::decision_function(acts, m, which);
      const auto fast = explain::edited_logits(acts, m, edits, base, which, means);
      const auto full = cbm::decision_function(explain::apply_edits(acts, edits, means), m, which);
      REQUIRE(fast.size() == full.size());
      // The full recompute stores edited activations as float32; the delta stays in float64.
      for (size_t q = 0; q < fast.size(); ++q) CHECK(fast[q] == doctest::Approx(full[q]).epsilon(1e-6));
    }
  }
}

TEST_CASE("apply_edits: zero, scale, clamp and mean act as documented") {
  CsrMatrix a;
  a.n_cols = 4;
  const int32_t c0[] = {0, 2};
  const float v0[] = {2.0f, 4.0f};
  const int32_t c1[] = {1};
  const float v1[] = {3.0f};
  a.append_row_sorted(c0, v0, 2);
  a.append_row_sorted(c1, v1, 1);
  const auto means = explain::latent_means(a);
  CHECK(means == std::vector<double>{1.0, 1.5, 2.0, 0.0});
  auto e = explain::apply_edits(a, {{0, explain::EditOp::zero, 0}, {2, explain::EditOp::scale, 0.5}});
  CHECK(e.indptr == std::vector<SparseIndex>{0, 1, 2});
  CHECK(e.indices == std::vector<int32_t>{2, 1});
  CHECK(e.values == std::vector<float>{2.0f, 3.0f});
  auto c = explain::apply_edits(a, {{3, explain::EditOp::clamp, 5}, {1, explain::EditOp::mean, 0}}, means);
  CHECK(c.indices == std::vector<int32_t>{0, 1, 2, 3, 1, 3});
  CHECK(c.values == std::vector<float>{2.0f, 1.5f, 4.0f, 5.0f, 1.5f, 5.0f});
  CHECK_THROWS_AS(explain::apply_edits(a, {{4, explain::EditOp::zero, 0}}), UsageError);
  CHECK_THROWS_AS(explain::apply_edits(a, {{1, explain::EditOp::zero, 0}, {1, explain::EditOp::scale, 2}}), UsageError);
  CHECK(explain::parse_edit_op("clamp") == explain::EditOp::clamp);
  CHECK_THROWS_AS(explain::parse_edit_op("remove"), UsageError);
}

TEST_CASE("weight share of latents") {
  cbm::LogRegFit m;
  m.n_classes = 3;
  m.n_rows = 3;
  m.n_features = 2;
  m.weights = {1, -1, 2, 0, 0, -4};
  m.bias = {0, 0, 0};
  CHECK(explain::weight_share(m, {1}) == doctest::Approx(5.0 / 8.0));
  CHECK(explain::weight_share(m, {}) == 0.0);
}
