// Concept matching: the latent x concept AUROC matrix over the column view equals cbm::auroc on
// each densified latent column (zeros tied, missing annotations left out), and the best-latent
// and threshold pickers order latents as documented.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "cbm/metrics.h"
#include "explain/concepts.h"

using namespace cl;

namespace {

// n x L activations, about two thirds zeros, few distinct values (ties), latent 3 leaning on y1.
struct Data {
  CsrMatrix acts;
  std::vector<std::vector<double>> dense;  // [L][n]
  explain::ConceptLabels y1, y2, y3;       // y3 has missing (-1) entries
};

Data make_data(int64_t n, int32_t L, uint32_t seed) {
  std::mt19937 rng(seed);
  Data d;
  d.acts.n_cols = L;
  d.dense.assign(L, std::vector<double>(n, 0.0));
  for (int64_t i = 0; i < n; ++i) {
    d.y1.push_back(rng() % 2);
    d.y2.push_back(rng() % 5 == 0);
    d.y3.push_back(rng() % 4 == 0 ? -1 : rng() % 3 == 0);
    std::vector<int32_t> cols;
    std::vector<float> vals;
    for (int32_t j = 0; j < L; ++j) {
      if (j == 3 ? !(d.y1.back() || rng() % 3 == 0) : rng() % 3 != 0) continue;
      float v = 0.5f * float(1 + rng() % 4) + (j == 3 && d.y1.back() ? 1.0f : 0.0f);
      cols.push_back(j);
      vals.push_back(v);
      d.dense[j][i] = v;
    }
    d.acts.append_row_sorted(cols.data(), vals.data(), static_cast<int64_t>(cols.size()));
  }
  return d;
}

double dense_auroc(const std::vector<double>& scores, const explain::ConceptLabels& y) {
  std::vector<double> s;
  std::vector<int> l;
  for (size_t i = 0; i < y.size(); ++i)
    if (y[i] >= 0) s.push_back(scores[i]), l.push_back(y[i]);
  return cbm::auroc(s, l);
}

}  // namespace

TEST_CASE("latent AUROC matrix equals cbm::auroc column by column, zeros tied, missing left out") {
  for (int threads : {1, 2}) {
    const auto d = make_data(300, 9, 5);
    const auto got = explain::latent_aurocs(to_csc(d.acts), {d.y1, d.y2, d.y3}, threads);
    REQUIRE(got.size() == 3);
    for (int j = 0; j < 9; ++j) {
      CAPTURE(j);
      CHECK(got[0][j] == doctest::Approx(dense_auroc(d.dense[j], d.y1)).epsilon(1e-12));
      CHECK(got[1][j] == doctest::Approx(dense_auroc(d.dense[j], d.y2)).epsilon(1e-12));
      CHECK(got[2][j] == doctest::Approx(dense_auroc(d.dense[j], d.y3)).epsilon(1e-12));
    }
    CHECK(got[0][3] > 0.7);
  }
  // A latent that never fires scores 0.5 (one tie block); a concept with one class is NaN.
  CsrMatrix empty;
  empty.n_cols = 2;
  for (int i = 0; i < 4; ++i) empty.append_row_sorted(nullptr, nullptr, 0);
  auto a = explain::latent_aurocs(to_csc(empty), {{0, 1, 0, 1}, {1, 1, -1, 1}});
  CHECK(a[0][0] == 0.5);
  CHECK(std::isnan(a[1][1]));
}

TEST_CASE("best latents per concept and latents above a threshold") {
  std::vector<std::vector<double>> a = {{0.5, 0.9, 0.7, 0.9}, {NAN, 0.6, NAN, 0.2}, {NAN, NAN, NAN, NAN}};
  auto m = explain::best_latents(a, {"x", "y", "z"});
  REQUIRE(m.size() == 3);
  CHECK(m[0].latent == 1);  // ties: the lower index
  CHECK(m[0].auroc == 0.9);
  CHECK(m[0].runner_up == 0.9);
  CHECK(m[1].latent == 1);
  CHECK(m[1].runner_up == 0.2);
  CHECK(m[2].latent == -1);
  CHECK(explain::latents_above(a[0], 0.7) == std::vector<int64_t>{1, 3, 2});
  CHECK(explain::latents_above(a[1], 0.95).empty());
  CHECK(explain::labels_from_column({0.0, 1.0, NAN, 0.4}) == explain::ConceptLabels{0, 1, -1, 0});
}
