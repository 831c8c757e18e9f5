// `sae bench` metrics against independent computations on generated data: the split,
// reconstruction, sparse probing's top-k choice and AUROC, SCR on a planted spurious latent, TPP
// on planted one-latent concepts vs a random dictionary, stability of a permuted dictionary vs
// random ones, and PCA against the covariance's eigenvectors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "cbm/metrics.h"
#include "core/error.h"
#include "core/random.h"
#include "explain/bench.h"

using namespace cl;
using namespace cl::explain;

namespace {

// Codes = the rows themselves (zeros dropped), decoder = identity: the bench then scores the
// embedding coordinates, which the tests plant.
class IdentityDictionary final : public sae::Dictionary {
 public:
  explicit IdentityDictionary(int64_t d) : d_(d) {}
  int64_t n_latents() const override { return d_; }
  int64_t d_in() const override { return d_; }
  CsrMatrix encode(const float* x_nd, int64_t n) const override { return csr_from_dense(x_nd, n, d_); }
  std::vector<float> decode(const CsrMatrix& codes) const override {
    std::vector<float> out(static_cast<size_t>(codes.n_rows * d_));
    csr_to_dense(codes, out.data());
    return out;
  }
  std::vector<float> decoder_rows() const override {
    std::vector<float> eye(static_cast<size_t>(d_ * d_), 0.f);
    for (int64_t i = 0; i < d_; ++i) eye[static_cast<size_t>(i * d_ + i)] = 1.f;
    return eye;
  }

 private:
  int64_t d_;
};

// Mann-Whitney AUROC, written out: the share of (positive, negative) pairs ranked right, ties half.
double direct_auroc(const std::vector<double>& s, const std::vector<int>& y) {
  double good = 0, pairs = 0;
  for (size_t i = 0; i < s.size(); ++i)
    for (size_t j = 0; j < s.size(); ++j)
      if (y[i] == 1 && y[j] == 0) good += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0, pairs += 1;
  return good / pairs;
}

BenchParams quick_params() {
  BenchParams p;
  p.baselines.clear();
  p.probe_ks = {1, 2};
  p.scr_ns = {1, 2};
  p.tpp_ns = {1};
  p.random_draws = 5;
  p.threads = 1;
  return p;
}

}  // namespace

TEST_CASE("bench split: seeded, disjoint, covering -- a split column is honoured and bad values named") {
  const RowSplit a = split_rows(100, 0.2, 3), b = split_rows(100, 0.2, 3), c = split_rows(100, 0.2, 4);
  CHECK(a.test == b.test);
  CHECK(a.test != c.test);
  CHECK(a.test.size() == 20);
  CHECK(a.train.size() == 80);
  std::vector<int64_t> all = a.train;
  all.insert(all.end(), a.test.begin(), a.test.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < 100; ++i) CHECK(all[static_cast<size_t>(i)] == i);
  const RowSplit s = split_rows(4, 0.5, 0, {"train", "test", "test", "train"}, "meta.csv");
  CHECK(s.test == std::vector<int64_t>{1, 2});
  CHECK(s.train == std::vector<int64_t>{0, 3});
  try {
    split_rows(3, 0.5, 0, {"train", "val", "test"}, "meta.csv");
    FAIL("expected an error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("'val'") != std::string::npos);
    CHECK(std::string(e.what()).find("meta.csv") != std::string::npos);
  }
  CHECK_THROWS_AS(split_rows(3, 0.5, 0, {"train", "train", "test"}, "meta.csv"), InputError);  // one held-out row
}

TEST_CASE("bench reconstruction: FVU, cosine, L0, dead and dense fractions against a hand computation") {
  // Two rows, two dims; x_hat misses the second row's second coordinate.
  const std::vector<float> x = {1, 0, 0, 2};
  const std::vector<float> xh = {1, 0, 0, 1};
  CsrMatrix acts;
  acts.n_cols = 4;
  const int32_t c0[] = {0, 1};
  const float v0[] = {1, 1};
  acts.append_row(c0, v0, 2);
  acts.append_row(c0, v0, 1);  // latent 0 on both rows, latent 1 on one, 2 and 3 dead
  acts.n_rows = 2;
  const ReconScores r = score_reconstruction(x.data(), xh, acts, 2, 2, 0.5);
  // mean (0.5, 1); variance sum = 0.25 + 0.25 + 1 + 1 = 2.5; error = 1.
  CHECK(r.fvu == doctest::Approx(1.0 / 2.5));
  CHECK(r.cosine == doctest::Approx(1.0));  // both reconstructions point the right way
  CHECK(r.l0 == doctest::Approx(1.5));
  CHECK(r.dead_fraction == doctest::Approx(0.5));
  CHECK(r.dense_fraction == doctest::Approx(0.25));  // latent 0 fires on 2/2 > 0.5; latent 1 on exactly 0.5
  int64_t counted = 0;
  for (auto c : r.freq_counts) counted += c;
  CHECK(counted == 2);  // the live latents
  CHECK(r.freq_counts.back() == 2);  // frequencies 0.5 and 1 fall in the top bin [-0.5, 0]
}

TEST_CASE("bench sparse probing: top-k by class-mean difference on training rows, AUROC on held-out rows") {
  const int64_t n = 400, d = 6;
  Rng rng(7);
  std::vector<float> x(static_cast<size_t>(n * d));
  ConceptLabels y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    y[static_cast<size_t>(i)] = static_cast<int8_t>(rng.bernoulli(0.4));
    for (int64_t j = 0; j < d; ++j) x[static_cast<size_t>(i * d + j)] = static_cast<float>(std::abs(rng.normal()));
    // Latent 3 carries the concept strongly, latent 1 weakly, the rest are noise.
    x[static_cast<size_t>(i * d + 3)] += 1.5f * y[static_cast<size_t>(i)];
    x[static_cast<size_t>(i * d + 1)] += 0.4f * y[static_cast<size_t>(i)];
  }
  BenchData data;
  data.x_nd = x.data(), data.n = n, data.d = d;
  for (int64_t i = 0; i < n; ++i) data.ids.push_back(std::to_string(i));
  data.annotations.names = {"c"};
  data.annotations.labels = {y};
  data.columns = {"c"};
  BenchParams p = quick_params();
  const RowSplit split = split_rows(n, 0.25, 1);
  const auto s = make_bench_split(data, split, p);
  const BenchEntry e = score_dictionary(IdentityDictionary(d), data, *s, p);
  REQUIRE(e.columns.size() == 1);
  REQUIRE(e.columns[0].note.empty());
  // The test's own top-k: |mean over positive training rows - mean over negatives|.
  std::vector<double> diff(static_cast<size_t>(d), 0.0);
  std::vector<double> sp(static_cast<size_t>(d), 0.0), sn(static_cast<size_t>(d), 0.0);
  double np = 0, nn = 0;
  for (int64_t i : split.train) {
    const bool pos = y[static_cast<size_t>(i)] == 1;
    (pos ? np : nn) += 1;
    for (int64_t j = 0; j < d; ++j) (pos ? sp : sn)[static_cast<size_t>(j)] += x[static_cast<size_t>(i * d + j)];
  }
  for (int64_t j = 0; j < d; ++j) diff[static_cast<size_t>(j)] = std::abs(sp[static_cast<size_t>(j)] / np - sn[static_cast<size_t>(j)] / nn);
  std::vector<int64_t> order(static_cast<size_t>(d));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return diff[static_cast<size_t>(a)] > diff[static_cast<size_t>(b)]; });
  CHECK(e.columns[0].probes[0].latents == std::vector<int64_t>{order[0]});
  CHECK(e.columns[0].probes[1].latents == std::vector<int64_t>{order[0], order[1]});
  CHECK(order[0] == 3);
  // k = 1: the probe is monotone in its one latent, so its AUROC is the latent's own held-out AUROC.
  std::vector<double> score;
  std::vector<int> lab;
  for (int64_t i : split.test) score.push_back(x[static_cast<size_t>(i * d + 3)]), lab.push_back(y[static_cast<size_t>(i)]);
  CHECK(e.columns[0].probes[0].auroc == doctest::Approx(direct_auroc(score, lab)).epsilon(1e-9));
  CHECK(e.mean_probe_auroc[0] == doctest::Approx(e.columns[0].probes[0].auroc));
  CHECK(e.columns[0].dense_probe_auroc > 0.8);
  // Reconstruction of the identity is exact.
  CHECK(e.recon.fvu == doctest::Approx(0.0).epsilon(1e-9));
}

TEST_CASE("bench SCR: zeroing a planted spurious latent removes the bias (about 1), a random latent does not (about 0)") {
  // Latent 0: the label with noise. Latent 1: the spurious column itself. Latents 2..9: noise.
  // Training rows mostly agree (label == spurious) so a probe on them leans on latent 1.
  const int64_t n = 4000, d = 10;
  Rng rng(11);
  std::vector<float> x(static_cast<size_t>(n * d));
  ConceptLabels label(static_cast<size_t>(n)), spur(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int l = rng.bernoulli(0.5);
    const int s = rng.bernoulli(0.5) ? l : 1 - l;  // independent overall: each cell about a quarter
    label[static_cast<size_t>(i)] = static_cast<int8_t>(l), spur[static_cast<size_t>(i)] = static_cast<int8_t>(s);
    x[static_cast<size_t>(i * d + 0)] = static_cast<float>(std::max(0.0, 1.0 + 0.8 * l + 0.5 * rng.normal()));
    x[static_cast<size_t>(i * d + 1)] = static_cast<float>(2.0 * s);
    for (int64_t j = 2; j < d; ++j) x[static_cast<size_t>(i * d + j)] = static_cast<float>(std::abs(rng.normal()));
  }
  BenchData data;
  data.x_nd = x.data(), data.n = n, data.d = d;
  for (int64_t i = 0; i < n; ++i) data.ids.push_back(std::to_string(i));
  data.annotations.names = {"malignant", "hair"};
  data.annotations.labels = {label, spur};
  data.columns = {"malignant"};
  BenchParams p = quick_params();
  p.spurious = {"hair:malignant"};
  p.scr_ns = {1};
  p.random_draws = 8;
  const auto s = make_bench_split(data, split_rows(n, 0.3, 2), p);
  const BenchEntry e = score_dictionary(IdentityDictionary(d), data, *s, p);
  REQUIRE(e.scr.size() == 1);
  const ScrCurve& c = e.scr[0];
  INFO(c.note);
  CHECK(c.auroc_unbiased - c.auroc_biased > 0.05);  // the bias costs something
  CHECK(c.latents[0] == std::vector<int64_t>{1});    // the spurious latent is ranked first
  CHECK(c.scr[0] == doctest::Approx(1.0).epsilon(0.1));
  CHECK(std::abs(c.random_mean[0]) < 0.1);
  CHECK(c.n_eval > 0);
  CHECK(c.n_eval % 4 == 0);  // four equal cells
}

TEST_CASE("bench TPP: planted one-latent concepts score high, a random dictionary over them about 0") {
  const int64_t n = 3000, C = 4, d = 8;
  Rng rng(13);
  std::vector<float> x(static_cast<size_t>(n * d));
  std::vector<ConceptLabels> ys(C, ConceptLabels(static_cast<size_t>(n)));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t c = 0; c < C; ++c) {
      const int v = rng.bernoulli(0.5);
      ys[static_cast<size_t>(c)][static_cast<size_t>(i)] = static_cast<int8_t>(v);
      x[static_cast<size_t>(i * d + c)] = static_cast<float>(std::max(0.0, 2.0 * v + 0.4 * rng.normal()));
    }
    for (int64_t j = C; j < d; ++j) x[static_cast<size_t>(i * d + j)] = static_cast<float>(std::abs(rng.normal()));
  }
  // A random dictionary over the same rows: 64 Gaussian directions, codes = ReLU(projection);
  // every latent mixes every concept a little.
  const int64_t L = 64;
  std::vector<double> R(static_cast<size_t>(L * d));
  for (auto& q : R) q = rng.normal();
  std::vector<float> xr(static_cast<size_t>(n * L));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t a = 0; a < L; ++a) {
      double v = 0;
      for (int64_t k = 0; k < d; ++k) v += R[static_cast<size_t>(a * d + k)] * (x[static_cast<size_t>(i * d + k)] - 0.5);
      xr[static_cast<size_t>(i * L + a)] = static_cast<float>(std::max(0.0, v));
    }
  const auto tpp_of = [&](const std::vector<float>& rows, int64_t dim) {
    BenchData data;
    data.x_nd = rows.data(), data.n = n, data.d = dim;
    for (int64_t i = 0; i < n; ++i) data.ids.push_back(std::to_string(i));
    for (int64_t c = 0; c < C; ++c) data.annotations.names.push_back("c" + std::to_string(c)), data.columns.push_back("c" + std::to_string(c));
    data.annotations.labels = ys;
    BenchParams p = quick_params();
    const auto s = make_bench_split(data, split_rows(n, 0.3, 5), p);
    return score_dictionary(IdentityDictionary(dim), data, *s, p).tpp;
  };
  const TppScores planted = tpp_of(x, d), mixed = tpp_of(xr, L);
  INFO("planted " << planted.tpp[0] << " random " << mixed.tpp[0]);
  CHECK(planted.n_columns == C);
  CHECK(planted.tpp[0] > 0.3);           // own probe falls to near chance, the others stay
  CHECK(planted.other_drop[0] < 0.02);
  CHECK(std::abs(mixed.tpp[0]) < 0.1);
  CHECK(planted.tpp[0] > mixed.tpp[0] + 0.25);
}

TEST_CASE("bench stability: a dictionary against itself permuted matches at cosine 1 -- random pairs at chance") {
  const int64_t L = 64, d = 32;
  Rng rng(17);
  std::vector<float> a(static_cast<size_t>(L * d)), b(a.size()), r1(a.size()), r2(a.size());
  for (auto& v : a) v = static_cast<float>(rng.normal());
  std::vector<int64_t> perm(static_cast<size_t>(L));
  std::iota(perm.begin(), perm.end(), 0);
  rng.shuffle(perm);
  for (int64_t i = 0; i < L; ++i)
    for (int64_t k = 0; k < d; ++k) b[static_cast<size_t>(perm[static_cast<size_t>(i)] * d + k)] = 3.f * a[static_cast<size_t>(i * d + k)];
  const MatchedCosines self = matched_decoder_cosine(a, L, b, L, d, 0.9);
  CHECK(self.mean == doctest::Approx(1.0).epsilon(1e-6));
  CHECK(self.fraction_above == doctest::Approx(1.0));
  for (auto& v : r1) v = static_cast<float>(rng.normal());
  for (auto& v : r2) v = static_cast<float>(rng.normal());
  const MatchedCosines rand = matched_decoder_cosine(a, L, r1, L, d, 0.9), rand2 = matched_decoder_cosine(r1, L, r2, L, d, 0.9);
  CHECK(rand.mean < 0.6);
  CHECK(rand.fraction_above == 0.0);
  CHECK(rand.mean == doctest::Approx(rand2.mean).epsilon(0.15));  // chance is a property of the shape
}

TEST_CASE("bench PCA: orthonormal components, the first is the covariance's top eigenvector, full budget reconstructs") {
  const int64_t n = 500, d = 5;
  Rng rng(19);
  std::vector<float> x(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n; ++i) {
    const double a = 3 * rng.normal(), b = rng.normal();
    for (int64_t j = 0; j < d; ++j) x[static_cast<size_t>(i * d + j)] = static_cast<float>(1 + a * (j + 1) / 5.0 + b * (j % 2 ? 1 : -1) + 0.1 * rng.normal());
  }
  const auto pca = sae::fit_pca(x.data(), n, d, d, Device(c10::kCPU));
  const auto V = pca->decoder_rows();
  REQUIRE(pca->n_latents() == d);
  for (int64_t a = 0; a < d; ++a)
    for (int64_t b = 0; b < d; ++b) {
      double dot = 0;
      for (int64_t k = 0; k < d; ++k) dot += V[static_cast<size_t>(a * d + k)] * V[static_cast<size_t>(b * d + k)];
      CHECK(dot == doctest::Approx(a == b ? 1.0 : 0.0).epsilon(1e-4));
    }
  // Power iteration on the covariance, written out.
  std::vector<double> mean(static_cast<size_t>(d), 0.0), cov(static_cast<size_t>(d * d), 0.0), v(static_cast<size_t>(d), 1.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) mean[static_cast<size_t>(j)] += x[static_cast<size_t>(i * d + j)] / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t a = 0; a < d; ++a)
      for (int64_t b = 0; b < d; ++b)
        cov[static_cast<size_t>(a * d + b)] += (x[static_cast<size_t>(i * d + a)] - mean[static_cast<size_t>(a)]) *
                                              (x[static_cast<size_t>(i * d + b)] - mean[static_cast<size_t>(b)]);
  for (int it = 0; it < 500; ++it) {
    std::vector<double> w(static_cast<size_t>(d), 0.0);
    double nrm = 0;
    for (int64_t a = 0; a < d; ++a) {
      for (int64_t b = 0; b < d; ++b) w[static_cast<size_t>(a)] += cov[static_cast<size_t>(a * d + b)] * v[static_cast<size_t>(b)];
      nrm += w[static_cast<size_t>(a)] * w[static_cast<size_t>(a)];
    }
    for (int64_t a = 0; a < d; ++a) v[static_cast<size_t>(a)] = w[static_cast<size_t>(a)] / std::sqrt(nrm);
  }
  double cos = 0;
  for (int64_t k = 0; k < d; ++k) cos += v[static_cast<size_t>(k)] * V[static_cast<size_t>(k)];
  CHECK(std::abs(cos) == doctest::Approx(1.0).epsilon(1e-4));
  // Every component kept: decode(encode(x)) is x.
  const auto xh = pca->decode(pca->encode(x.data(), n));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(double(xh[i]) - x[i]));
  CHECK(worst < 1e-3);
  // A budget of one code per row keeps the largest |projection|: L0 is 1.
  const auto one = sae::fit_pca(x.data(), n, d, 1, Device(c10::kCPU));
  CHECK(one->encode(x.data(), n).nnz() == n);
}

TEST_CASE("bench NMF and k-means: non-negative codes within budget, k-means codes one centroid, NMF refuses negatives") {
  const int64_t n = 300, d = 6;
  Rng rng(23);
  std::vector<float> x(static_cast<size_t>(n * d));
  // Three non-negative prototypes, each row one of them scaled, plus a little noise.
  const float proto[3][6] = {{1, 1, 0, 0, 0, 0}, {0, 0, 1, 1, 0, 0}, {0, 0, 0, 0, 1, 1}};
  for (int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i % 3);
    const double sc = 1 + rng.uniform();
    for (int64_t j = 0; j < d; ++j) x[static_cast<size_t>(i * d + j)] = static_cast<float>(sc * proto[c][j] + 0.01 * rng.uniform());
  }
  const auto km = sae::fit_kmeans(x.data(), n, d, 3, 20, 1, Device(c10::kCPU));
  const CsrMatrix kc = km->encode(x.data(), n);
  CHECK(kc.nnz() == n);  // one centroid per row
  const auto kx = km->decode(kc);
  double err = 0, tot = 0;
  for (size_t i = 0; i < x.size(); ++i) err += (kx[i] - x[i]) * (kx[i] - x[i]), tot += x[i] * x[i];
  CHECK(err / tot < 0.01);  // scaled prototypes are reconstructed by a scaled centroid
  const auto nmf = sae::fit_nmf(x.data(), n, d, 3, 2, 200, 1, "x.h5", Device(c10::kCPU));
  const CsrMatrix nc = nmf->encode(x.data(), n);
  CHECK(nc.nnz() <= 2 * n);
  for (float v : nc.values) CHECK(v >= 0);
  const auto nx = nmf->decode(nc);
  err = 0;
  for (size_t i = 0; i < x.size(); ++i) err += (nx[i] - x[i]) * (nx[i] - x[i]);
  CHECK(err / tot < 0.05);
  x[7] = -0.5f;
  try {
    sae::fit_nmf(x.data(), n, d, 3, 2, 5, 1, "x.h5", Device(c10::kCPU));
    FAIL("expected an error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("x.h5") != std::string::npos);
    CHECK(std::string(e.what()).find("non-negative") != std::string::npos);
  }
}

TEST_CASE("bench params: bad values are usage errors naming the field") {
  BenchParams p;
  validate(p);
  p.baselines = {"pca", "ica"};
  CHECK_THROWS_WITH_AS(validate(p), doctest::Contains("ica"), UsageError);
  p = BenchParams{};
  p.spurious = {"hair"};
  CHECK_THROWS_WITH_AS(validate(p), doctest::Contains("COLUMN:LABEL"), UsageError);
  p = BenchParams{};
  p.probe_ks = {0};
  CHECK_THROWS_AS(validate(p), UsageError);
  p = BenchParams{};
  p.holdout = 1.0;
  CHECK_THROWS_AS(validate(p), UsageError);
}
