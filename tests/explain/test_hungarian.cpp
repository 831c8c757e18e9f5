// The assignment equals brute force (every injective map) on small square and rectangular
// matrices: random values, many ties, negative values.
#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "explain/hungarian.h"

using namespace cl::explain;

namespace {

// The minimum total cost over every assignment of min(r, c) pairs (rows or columns unmatched
// only when the other side runs out).
double brute_force(const std::vector<double>& cost, int64_t r, int64_t c) {
  const bool wide = r <= c;
  const int64_t n = wide ? r : c, m = wide ? c : r;
  std::vector<int64_t> pick(static_cast<size_t>(m));
  std::iota(pick.begin(), pick.end(), 0);
  double best = 1e300;
  // Every ordered choice of n of the m indices: permutations of m, first n used (duplicates are
  // harmless for a minimum).
  do {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += wide ? cost[i * c + pick[i]] : cost[pick[i] * c + i];
    best = std::min(best, s);
  } while (std::next_permutation(pick.begin(), pick.end()));
  return best;
}

}  // namespace

TEST_CASE("assignment equals brute force on small matrices") {
  std::mt19937 rng(7);
  int tried = 0;
  for (int64_t r = 1; r <= 6; ++r)
    for (int64_t c = 1; c <= 6; ++c)
      for (int kind = 0; kind < 3; ++kind)
        for (int rep = 0; rep < 6; ++rep) {
          std::vector<double> cost(static_cast<size_t>(r * c));
          for (auto& v : cost) {
            if (kind == 0) v = std::uniform_real_distribution<double>(0, 1)(rng);       // random
            else if (kind == 1) v = static_cast<double>(rng() % 3);                     // ties
            else v = std::uniform_real_distribution<double>(-5, 2)(rng);               // negative
          }
          const auto a = assign_min_cost(cost, r, c);
          REQUIRE(static_cast<int64_t>(a.size()) == r);
          std::vector<int> used(static_cast<size_t>(c), 0);
          double total = 0;
          int64_t matched = 0;
          for (int64_t i = 0; i < r; ++i) {
            if (a[i] < 0) continue;
            REQUIRE(a[i] < c);
            CHECK(used[a[i]]++ == 0);  // one row per column
            total += cost[i * c + a[i]];
            ++matched;
          }
          CHECK(matched == std::min(r, c));
          CHECK(total == doctest::Approx(brute_force(cost, r, c)).epsilon(1e-12));
          ++tried;
        }
  CHECK(tried == 6 * 6 * 3 * 6);
}

TEST_CASE("assign_max_score maximises and handles empty sides") {
  // Greedy would take 0.9 (row 0 -> col 0) and then 0.1; the optimum is 0.8 + 0.8.
  const std::vector<double> s = {0.9, 0.8, 0.8, 0.1};
  CHECK(assign_max_score(s, 2, 2) == std::vector<int64_t>{1, 0});
  CHECK(assign_min_cost({}, 0, 3).empty());
  CHECK(assign_min_cost({}, 2, 0) == std::vector<int64_t>{-1, -1});
}
