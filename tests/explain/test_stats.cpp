// Latent statistics and the inverted index: retrieval order equals a direct sort (ties by row),
// statistics equal direct computations, the index file round-trips, and a corrupt index is refused.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"
#include "core/h5.h"
#include "core/latent_index.h"
#include "explain/stats.h"
#include "tests/test_util.h"

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
      if (j != L - 1 && rng() % 4 == 0) c.push_back(j), v.push_back(0.25f * float(1 + rng() % 8));  // ties
    m.append_row_sorted(c.data(), v.data(), static_cast<int64_t>(c.size()));
  }
  return m;
}
}  // namespace

TEST_CASE("index: retrieval order equals a direct sort, statistics equal direct computations") {
  const auto acts = random_acts(300, 12, 3);
  for (int threads : {1, 2}) {
    explain::StatsParams p;
    p.threads = threads;
    const auto x = explain::build_index(acts, p);
    for (int32_t j = 0; j < 12; ++j) {
      CAPTURE(j);
      std::vector<std::pair<float, int64_t>> col;  // (value, row)
      for (int64_t i = 0; i < acts.n_rows; ++i)
        for (auto q = acts.indptr[i]; q < acts.indptr[i + 1]; ++q)
          if (acts.indices[q] == j) col.emplace_back(acts.values[q], i);
      std::stable_sort(col.begin(), col.end(), [](auto& a, auto& b) { return a.first > b.first; });
      const auto hits = explain::top_images(x, j, 1000);
      REQUIRE(hits.size() == col.size());
      for (size_t k = 0; k < col.size(); ++k) {
        CHECK(hits[k].row == col[k].second);
        CHECK(hits[k].value == col[k].first);
      }
      CHECK(x.fire_count[j] == static_cast<int64_t>(col.size()));
      double sum = 0;
      for (auto& [v, r] : col) sum += v;
      CHECK(x.mean[j] == doctest::Approx(sum / 300.0));
      if (col.empty()) {
        CHECK(std::isnan(x.mean_active[j]));
        continue;
      }
      CHECK(x.mean_active[j] == doctest::Approx(sum / double(col.size())));
      CHECK(x.max[j] == col.front().first);
      int64_t in_hist = 0;
      for (int64_t b = 0; b < x.n_bins(); ++b) in_hist += x.hist[j * x.n_bins() + b];
      CHECK(in_hist == static_cast<int64_t>(col.size()));
      std::vector<float> asc;
      for (auto& [v, r] : col) asc.push_back(v);
      std::reverse(asc.begin(), asc.end());
      for (int qi = 0; qi < 3; ++qi) {  // numpy's linear quantiles
        const double pos = x.quantile_levels[qi] * double(asc.size() - 1);
        const size_t lo = size_t(pos);
        const double want = lo + 1 < asc.size() ? asc[lo] + (pos - double(lo)) * (asc[lo + 1] - asc[lo]) : asc[lo];
        CHECK(x.quantiles[j * 3 + qi] == doctest::Approx(want).epsilon(1e-6));
      }
    }
    CHECK(x.fire_count[11] == 0);  // a silent latent: no images, NaN statistics
    CHECK(explain::top_images(x, 11, 5).empty());
    CHECK(explain::top_images(x, 0, 3).size() == 3);
    CHECK_THROWS_AS(explain::top_images(x, 12, 3), InputError);
  }
}

TEST_CASE("top latents of an image: highest first, ties by latent") {
  CsrMatrix m;
  m.n_cols = 6;
  const int32_t c[] = {0, 2, 3, 5};
  const float v[] = {1.0f, 3.0f, 1.0f, 2.0f};
  m.append_row_sorted(c, v, 4);
  const auto h = explain::top_latents(m, 0, 3);
  REQUIRE(h.size() == 3);
  CHECK(h[0].row == 2);
  CHECK(h[1].row == 5);
  CHECK(h[2].row == 0);
  CHECK_THROWS_AS(explain::top_latents(m, 1, 3), InputError);
}

TEST_CASE("index file round-trips and refuses a broken inverted index") {
  test::TempDir t;
  auto x = explain::build_index(random_acts(50, 7, 9));
  x.config = {{"activations", "a.h5"}};
  write_latent_index(t.file("i.h5"), x);
  const auto y = read_latent_index(t.file("i.h5"));
  CHECK(y.n_rows == x.n_rows);
  CHECK(y.fire_count == x.fire_count);
  CHECK(y.rows == x.rows);
  CHECK(y.values == x.values);
  CHECK(y.hist == x.hist);
  CHECK(y.hist_edges == x.hist_edges);
  CHECK(y.quantile_levels == x.quantile_levels);
  CHECK(y.config == x.config);
  // Values out of order within a latent: refused, naming the latent.
  auto bad = x;
  std::swap(bad.values[0], bad.values[1]);
  if (bad.values[0] != bad.values[1] && bad.indptr[1] >= 2) {
    write_latent_index(t.file("b.h5"), bad);
    CHECK_THROWS_WITH_AS(read_latent_index(t.file("b.h5")), doctest::Contains("latent 0"), InputError);
  }
  CHECK_THROWS_AS(read_latent_index(t.file("missing.h5")), InputError);
}
