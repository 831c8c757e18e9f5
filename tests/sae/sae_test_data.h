// Synthetic SAE data for tests: sparse non-negative combinations of known unit directions,
// plus direct float64 reference computations of the SAE's metrics.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/embeddings.h"
#include "core/sae_weights.h"

namespace cl::test {

struct GroundTruth {
  int64_t n = 0, d = 0, n_dirs = 0;
  std::vector<float> dirs;  // [n_dirs, d], unit rows
  std::vector<float> x;     // [n, d]
};

// Each row: 5-8 random directions with coefficients in [0.5, 2], plus N(0, noise^2) noise.
inline GroundTruth make_ground_truth(int64_t n, int64_t d, int64_t n_dirs, uint64_t seed, double noise = 0.01) {
  GroundTruth g;
  g.n = n;
  g.d = d;
  g.n_dirs = n_dirs;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::uniform_real_distribution<double> coef(0.5, 2.0);
  g.dirs.resize(static_cast<size_t>(n_dirs * d));
  for (int64_t i = 0; i < n_dirs; ++i) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) {
      const double v = nd(rng);
      g.dirs[static_cast<size_t>(i * d + j)] = static_cast<float>(v);
      s += v * v;
    }
    s = std::sqrt(s);
    for (int64_t j = 0; j < d; ++j) g.dirs[static_cast<size_t>(i * d + j)] /= static_cast<float>(s);
  }
  g.x.assign(static_cast<size_t>(n * d), 0.0f);
  std::uniform_int_distribution<int64_t> pick(0, n_dirs - 1), count(5, 8);
  for (int64_t r = 0; r < n; ++r) {
    const int64_t c = count(rng);
    float* row = g.x.data() + r * d;
    for (int64_t a = 0; a < c; ++a) {
      const int64_t i = pick(rng);
      const double w = coef(rng);
      for (int64_t j = 0; j < d; ++j) row[j] += static_cast<float>(w * g.dirs[static_cast<size_t>(i * d + j)]);
    }
    for (int64_t j = 0; j < d; ++j) row[j] += static_cast<float>(noise * nd(rng));
  }
  return g;
}

// make_ground_truth's rows written as an embeddings file (ids img_0, img_1, ...); returns them.
// g's rows as embeddings with ids img_0, img_1, ...
inline Embeddings ground_truth_embeddings(const GroundTruth& g) {
  Embeddings e;
  e.n = g.n;
  e.dim = g.d;
  e.data = g.x;
  for (int64_t i = 0; i < g.n; ++i) e.ids.push_back("img_" + std::to_string(i));
  return e;
}

inline GroundTruth write_ground_truth_embeddings(const std::string& path, int64_t n, int64_t d, int64_t n_dirs,
                                                 uint64_t seed) {
  GroundTruth g = make_ground_truth(n, d, n_dirs, seed);
  write_embeddings(path, ground_truth_embeddings(g));
  return g;
}

// Mean over true directions of the max cosine similarity to a learned decoder row.
inline double mean_max_cosine(const GroundTruth& g, const SaeWeights& w) {
  const int64_t d = g.d;
  std::vector<double> norms(static_cast<size_t>(w.n_latents));
  for (int64_t l = 0; l < w.n_latents; ++l) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += double(w.W_dec[static_cast<size_t>(l * d + j)]) * w.W_dec[static_cast<size_t>(l * d + j)];
    norms[static_cast<size_t>(l)] = std::sqrt(std::max(s, 1e-30));
  }
  double total = 0;
  for (int64_t i = 0; i < g.n_dirs; ++i) {
    double best = -1;
    for (int64_t l = 0; l < w.n_latents; ++l) {
      double s = 0;
      for (int64_t j = 0; j < d; ++j)
        s += double(g.dirs[static_cast<size_t>(i * d + j)]) * w.W_dec[static_cast<size_t>(l * d + j)];
      best = std::max(best, s / norms[static_cast<size_t>(l)]);
    }
    total += best;
  }
  return total / static_cast<double>(g.n_dirs);
}

// Pre-activations (x - b_dec) W_enc + b_enc of one row in float64.
inline std::vector<double> pre_acts_f64(const SaeWeights& w, const float* x) {
  const int64_t d = w.d_in, n = w.n_latents;
  std::vector<double> pre(w.b_enc.begin(), w.b_enc.end());
  for (int64_t j = 0; j < d; ++j) {
    const double xc = double(x[j]) - w.b_dec[static_cast<size_t>(j)];
    const float* wr = w.W_enc.data() + j * n;
    for (int64_t l = 0; l < n; ++l) pre[static_cast<size_t>(l)] += xc * wr[l];
  }
  return pre;
}

}  // namespace cl::test
