// Metrics against their definitions (pairwise AUROC, hand-computed confusion matrices) and the
// splitters' proportions and reproducibility.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "cbm/metrics.h"
#include "core/error.h"

using namespace cl;
using namespace cl::cbm;

namespace {
double pairwise_auroc(const std::vector<double>& s, const std::vector<int>& l) {
  double num = 0, den = 0;
  for (size_t i = 0; i < s.size(); ++i)
    for (size_t j = 0; j < s.size(); ++j)
      if (l[i] == 1 && l[j] == 0) {
        den += 1;
        num += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
      }
  return num / den;
}
}  // namespace

TEST_CASE("metrics: AUROC equals the pairwise definition with ties") {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int> coarse(0, 7);  // few distinct scores -> many ties
  for (int rep = 0; rep < 20; ++rep) {
    int n = 30 + rep * 7;
    std::vector<double> s(n);
    std::vector<int> l(n);
    for (int i = 0; i < n; ++i) {
      l[i] = int(rng() % 3 == 0);
      s[i] = coarse(rng) * 0.1 + (l[i] ? 0.05 * coarse(rng) : 0.0);
    }
    if (std::count(l.begin(), l.end(), 1) == 0) l[0] = 1;
    if (std::count(l.begin(), l.end(), 0) == 0) l[1] = 0;
    CHECK(auroc(s, l) == doctest::Approx(pairwise_auroc(s, l)).epsilon(1e-12));
  }
  CHECK(auroc({0.1, 0.2, 0.3}, {0, 1, 1}) == 1.0);
  CHECK(auroc({0.5, 0.5}, {0, 1}) == 0.5);
  CHECK(std::isnan(auroc({0.1, 0.2}, {1, 1})));
}

TEST_CASE("metrics: multiclass AUROC is the macro mean of one-vs-rest") {
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<double> U(0, 1);
  const int n = 90, C = 3;
  std::vector<int> y(n);
  std::vector<double> P(n * C);
  for (int i = 0; i < n; ++i) {
    y[i] = i % C;
    double s = 0;
    for (int k = 0; k < C; ++k) s += P[i * C + k] = std::round(10 * (U(rng) + (k == y[i]) * 0.3)) / 10 + 1e-3;
    for (int k = 0; k < C; ++k) P[i * C + k] /= s;
  }
  double want = 0;
  for (int k = 0; k < C; ++k) {
    std::vector<double> s(n);
    std::vector<int> l(n);
    for (int i = 0; i < n; ++i) s[i] = P[i * C + k], l[i] = y[i] == k;
    want += pairwise_auroc(s, l) / C;
  }
  CHECK(auroc_multi(y, P, C) == doctest::Approx(want).epsilon(1e-12));
}

TEST_CASE("metrics: macro-F1, accuracy and balanced accuracy from a hand-computed confusion matrix") {
  // true 0 0 0 1 1 2, predicted 0 0 1 1 2 2
  std::vector<int> y = {0, 0, 0, 1, 1, 2}, pred = {0, 0, 1, 1, 2, 2};
  auto cm = confusion_matrix(y, pred, 3);
  CHECK(cm == std::vector<int64_t>{2, 1, 0, 0, 1, 1, 0, 0, 1});
  // F1: class 0 = 2*2/(3+2) = 0.8, class 1 = 2*1/(2+2) = 0.5, class 2 = 2*1/(1+2) = 2/3.
  CHECK(macro_f1(cm, 3) == doctest::Approx((0.8 + 0.5 + 2.0 / 3) / 3));
  CHECK(balanced_accuracy(cm, 3) == doctest::Approx((2.0 / 3 + 0.5 + 1.0) / 3));
  CHECK(accuracy(cm, 3) == doctest::Approx(4.0 / 6));
  // Binary: TP 3, FN 1, FP 2, TN 4.
  std::vector<int> yb = {1, 1, 1, 1, 0, 0, 0, 0, 0, 0}, pb = {1, 1, 1, 0, 1, 1, 0, 0, 0, 0};
  auto cb = confusion_matrix(yb, pb, 2);
  double f1_pos = 2.0 * 3 / (4 + 5), f1_neg = 2.0 * 4 / (6 + 5);
  CHECK(macro_f1(cb, 2) == doctest::Approx((f1_pos + f1_neg) / 2));
  CHECK(balanced_accuracy(cb, 2) == doctest::Approx((3.0 / 4 + 4.0 / 6) / 2));
}

TEST_CASE("metrics: evaluate argmaxes probabilities") {
  std::vector<int> y = {0, 1, 1, 0};
  std::vector<double> P = {0.9, 0.1, 0.2, 0.8, 0.6, 0.4, 0.3, 0.7};
  auto m = evaluate(y, P, 2);
  CHECK(m.accuracy == doctest::Approx(0.5));
  CHECK(m.auroc == doctest::Approx(pairwise_auroc({0.1, 0.8, 0.4, 0.7}, y)));
}

TEST_CASE("splitter: stratified proportions, disjoint cover, seed reproducibility") {
  std::vector<int> y;
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < (k == 0 ? 50 : k == 1 ? 30 : 21); ++i) y.push_back(k);
  std::mt19937_64 rng(5);
  for (size_t i = y.size(); i > 1; --i) std::swap(y[i - 1], y[rng() % i]);
  auto a = stratified_split(y, 3, 0.2, 7, "t"), b = stratified_split(y, 3, 0.2, 7, "t"),
       c = stratified_split(y, 3, 0.2, 8, "t");
  CHECK(a.train == b.train);
  CHECK(a.test == b.test);
  CHECK(a.test != c.test);
  std::vector<int> cnt(3, 0);
  for (auto r : a.test) cnt[y[r]]++;
  CHECK(cnt == std::vector<int>{10, 6, 4});  // round(0.2 * {50, 30, 21})
  std::set<int64_t> all(a.train.begin(), a.train.end());
  for (auto r : a.test) CHECK(all.insert(r).second);
  CHECK(all.size() == y.size());
  CHECK(std::is_sorted(a.train.begin(), a.train.end()));
}

TEST_CASE("splitter: too-small classes and k-shot") {
  std::vector<int> y = {0, 0, 0, 1};
  CHECK_THROWS_WITH_AS(stratified_split(y, 2, 0.2, 0, "labels.csv column 'dx'"),
                       doctest::Contains("labels.csv column 'dx': class 1 has 1 member"), InputError);
  std::vector<int> y2 = {0, 0, 0, 1, 1, 1, 2, 2, 2};
  auto s = kshot_split(y2, 3, 2, 1, "t");
  CHECK(s.train.size() == 6);
  CHECK(s.test.size() == 3);
  std::vector<int> cnt(3, 0);
  for (auto r : s.train) cnt[y2[r]]++;
  CHECK(cnt == std::vector<int>{2, 2, 2});
  CHECK_THROWS_AS(kshot_split(y2, 3, 3, 1, "t"), InputError);
}

TEST_CASE("summary: mean, sample std and percentile interval") {
  auto s = summarize({1, 2, 3, 4, NAN});
  CHECK(s.mean == doctest::Approx(2.5));
  CHECK(s.std == doctest::Approx(std::sqrt(5.0 / 3)));
  CHECK(s.lo == doctest::Approx(1 + 0.025 * 3));
  CHECK(s.hi == doctest::Approx(1 + 0.975 * 3));
}

TEST_CASE("bootstrap: reproducible from the seed, interval around the point estimate") {
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> U(0, 1);
  const int n = 200;
  std::vector<int> y(n);
  std::vector<double> P(2 * n);
  for (int i = 0; i < n; ++i) {
    y[i] = i % 2;
    double p1 = std::clamp(0.5 + (y[i] ? 0.2 : -0.2) + 1.0 * (U(rng) - 0.5), 0.0, 1.0);
    P[2 * i] = 1 - p1, P[2 * i + 1] = p1;
  }
  auto a = bootstrap_metrics(y, P, 2, 200, 3), b = bootstrap_metrics(y, P, 2, 200, 3),
       c = bootstrap_metrics(y, P, 2, 200, 4);
  CHECK(to_json(a) == to_json(b));
  CHECK(to_json(a) != to_json(c));
  double point = evaluate(y, P, 2).auroc;
  CHECK(a.auroc.lo < point);
  CHECK(a.auroc.hi > point);
  CHECK(a.auroc.std > 0);
}

TEST_CASE("average precision: scikit-learn's step definition, ties as one threshold, sparse block") {
  using cl::cbm::average_precision;
  CHECK(average_precision({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}) == doctest::Approx(0.8333333333));
  CHECK(average_precision({0.5, 0.5, 0.5, 0.5}, {0, 1, 0, 1}) == doctest::Approx(0.5));
  CHECK(average_precision({0.9, 0.1}, {1, 0}) == 1.0);
  CHECK(std::isnan(average_precision({0.1, 0.2}, {0, 0})));
  CHECK(std::isnan(average_precision({NAN, 0.2}, {1, 0})));
  // A sparse score vector: explicit non-zeros plus a block of zeros equals the dense computation.
  std::mt19937_64 rng(3);
  for (int rep = 0; rep < 20; ++rep) {
    std::vector<double> dense;
    std::vector<int> lab;
    std::vector<double> nz;
    std::vector<int> nz_lab;
    int64_t zp = 0, zn = 0;
    for (int i = 0; i < 60; ++i) {
      const int y = rng() % 3 == 0;
      const double v = rng() % 2 ? 0.0 : double(rng() % 5) / 4.0 + 0.25;
      dense.push_back(v), lab.push_back(y);
      if (v == 0) (y ? zp : zn)++;
      else nz.push_back(v), nz_lab.push_back(y);
    }
    std::vector<size_t> o(nz.size());
    std::iota(o.begin(), o.end(), 0);
    std::sort(o.begin(), o.end(), [&](size_t a, size_t b) { return nz[a] < nz[b]; });
    std::vector<double> s;
    std::vector<int> l;
    for (auto i : o) s.push_back(nz[i]), l.push_back(nz_lab[i]);
    CHECK(cl::cbm::average_precision_sorted(s.data(), l.data(), s.size(), 0.0, zp, zn) ==
          doctest::Approx(average_precision(dense, lab)).epsilon(1e-12));
    CHECK(cl::cbm::auroc_sorted(s.data(), l.data(), s.size(), 0.0, zp, zn) ==
          doctest::Approx(cl::cbm::auroc(dense, lab)).epsilon(1e-12));
  }
  // AUROC is total on NaN scores (no endless tie loop): NaN out.
  CHECK(std::isnan(cl::cbm::auroc({0.1, NAN, 0.3}, {0, 1, 1})));
}
