// cbm_bench: the reference's 50-split L1 protocol on generated SAE-like data (sparse,
// non-negative), binary and 7-class, printing wall time and mean AUROC. With --dump DIR it also
// writes the data and the exact splits as .npy so bench/cbm_sklearn.py fits scikit-learn's
// SGDClassifier on the same rows for the comparison.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cbm/dataset.h"
#include "cbm/metrics.h"
#include "cbm/protocol.h"

namespace {

struct Opts {
  int64_t n = 10000, f = 8192;
  double density = 0.02;
  int splits = 50, threads = 0;
  double alpha = 1e-3;
  std::string dump;
  std::vector<int> classes = {2, 7};
  std::string solver = "auto";
  double tol = 1e-4;
};

// Minimal .npy writer (v1.0, little endian, C order) so the bench depends only on cbm.
template <typename T>
void write_npy(const std::string& path, const std::vector<T>& v, std::vector<int64_t> shape, const char* descr) {
  std::string shp = "(";
  for (size_t i = 0; i < shape.size(); ++i) shp += std::to_string(shape[i]) + (shape.size() == 1 ? "," : i + 1 < shape.size() ? ", " : "");
  shp += ")";
  std::string hdr = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shp + ", }";
  while ((10 + hdr.size() + 1) % 64) hdr += ' ';
  hdr += '\n';
  std::ofstream o(path, std::ios::binary);
  o.write("\x93NUMPY\x01\x00", 8);
  uint16_t len = uint16_t(hdr.size());
  o.write(reinterpret_cast<const char*>(&len), 2);
  o.write(hdr.data(), std::streamsize(hdr.size()));
  o.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
}

cl::cbm::Dataset generate(const Opts& o, int C, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> col(0, int32_t(o.f - 1));
  std::exponential_distribution<float> val(1.0f);
  std::normal_distribution<double> nrm(0.0, 1.0);
  const int K = C == 2 ? 1 : C;
  const int n_inf = C == 2 ? 128 : 64;  // informative latents per logit row
  std::vector<double> W(size_t(K) * o.f, 0.0);
  for (int k = 0; k < K; ++k)
    for (int q = 0; q < n_inf; ++q) W[size_t(k) * o.f + col(rng)] = 1.2 * nrm(rng);
  cl::cbm::Dataset d;
  d.X.n_cols = o.f;
  const int64_t per_row = int64_t(std::llround(o.density * o.f));
  std::vector<int32_t> cols;
  std::vector<float> vals;
  std::vector<double> logits(size_t(o.n) * K);
  for (int64_t i = 0; i < o.n; ++i) {
    cols.clear(), vals.clear();
    for (int64_t q = 0; q < per_row; ++q) cols.push_back(col(rng));
    std::sort(cols.begin(), cols.end());
    cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
    for (size_t q = 0; q < cols.size(); ++q) vals.push_back(val(rng));
    for (size_t q = 0; q < cols.size(); ++q) {
      d.X.indices.push_back(cols[q]);
      d.X.values.push_back(vals[q]);
      for (int k = 0; k < K; ++k) logits[i * K + k] += W[size_t(k) * o.f + cols[q]] * vals[q];
    }
    d.X.indptr.push_back(cl::SparseIndex(d.X.indices.size()));
    d.X.n_rows++;
  }
  // Centre each logit so classes are roughly balanced, then sample labels.
  for (int k = 0; k < K; ++k) {
    double m = 0;
    for (int64_t i = 0; i < o.n; ++i) m += logits[i * K + k] / o.n;
    for (int64_t i = 0; i < o.n; ++i) logits[i * K + k] -= m;
  }
  std::uniform_real_distribution<double> u(0, 1);
  for (int64_t i = 0; i < o.n; ++i) {
    if (K == 1) {
      d.y.push_back(u(rng) < 1 / (1 + std::exp(-logits[i])) ? 1 : 0);
    } else {
      std::vector<double> p(K);
      double mx = -1e300, s = 0;
      for (int k = 0; k < K; ++k) mx = std::max(mx, logits[i * K + k]);
      for (int k = 0; k < K; ++k) s += p[k] = std::exp(logits[i * K + k] - mx);
      double r = u(rng) * s;
      int k = 0;
      while (k < K - 1 && (r -= p[k]) > 0) ++k;
      d.y.push_back(k);
    }
    d.ids.push_back(std::to_string(i));
  }
  for (int k = 0; k < C; ++k) d.classes.push_back(std::to_string(k));
  d.labels_path = "generated";
  d.label_col = "y";
  d.features_kind = "activations";
  return d;
}

void dump(const Opts& o, const cl::cbm::Dataset& d, int C, uint64_t seed) {
  namespace fs = std::filesystem;
  std::string dir = o.dump + "/c" + std::to_string(C);
  fs::create_directories(dir);
  write_npy(dir + "/indptr.npy", d.X.indptr, {int64_t(d.X.indptr.size())}, "<i4");
  write_npy(dir + "/indices.npy", d.X.indices, {int64_t(d.X.indices.size())}, "<i4");
  write_npy(dir + "/values.npy", d.X.values, {int64_t(d.X.values.size())}, "<f4");
  write_npy(dir + "/y.npy", d.y, {int64_t(d.y.size())}, "<i4");
  std::vector<int8_t> test_mask(size_t(o.splits) * o.n, 0);
  for (int s = 0; s < o.splits; ++s) {
    auto sp = cl::cbm::stratified_split(d.y, C, 0.2, seed + s, "generated");
    for (auto r : sp.test) test_mask[size_t(s) * o.n + r] = 1;
  }
  write_npy(dir + "/test_mask.npy", test_mask, {o.splits, o.n}, "|i1");
  std::ofstream(dir + "/shape.txt") << d.X.n_rows << " " << d.X.n_cols << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  Opts o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--n") o.n = std::stoll(next());
    else if (a == "--f") o.f = std::stoll(next());
    else if (a == "--density") o.density = std::stod(next());
    else if (a == "--splits") o.splits = std::stoi(next());
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--alpha") o.alpha = std::stod(next());
    else if (a == "--dump") o.dump = next();
    else if (a == "--solver") o.solver = next();
    else if (a == "--tol") o.tol = std::stod(next());
    else if (a == "--classes") o.classes = {std::stoi(next())};
    else {
      std::fprintf(stderr,
                   "usage: cbm_bench [--n 10000] [--f 8192] [--density 0.02] [--splits 50] [--threads 0] "
                   "[--alpha 1e-3] [--classes 2|7] [--solver auto|cd|lbfgs] [--tol 1e-4] [--dump DIR]\n");
      return 2;
    }
  }
  std::printf("cbm_bench: %lld x %lld, density %.3f, %d splits, L1 alpha %g, tol %g, threads %u\n", (long long)o.n,
              (long long)o.f, o.density, o.splits, o.alpha, o.tol,
              o.threads ? unsigned(o.threads) : std::thread::hardware_concurrency());
  for (int C : o.classes) {
    const uint64_t seed = 1234;
    auto d = generate(o, C, 42 + C);
    if (!o.dump.empty()) dump(o, d, C, seed);
    cl::cbm::ProtocolParams p;
    p.model.penalty = "l1";
    p.model.alpha = o.alpha;
    p.model.solver = o.solver;
    p.model.tol = o.tol;
    p.splits = o.splits;
    p.seed = seed;
    p.threads = o.threads;
    auto t0 = std::chrono::steady_clock::now();
    auto r = cl::cbm::run_repeated_splits(d, p);
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto& j = r.report;
    std::printf(
        "classes %d: nnz(X) %lld, wall %.3f s (%.1f ms/split), mean AUROC %.4f (std %.4f), macro-F1 %.4f, "
        "accuracy %.4f, nnz weights %.1f, mean iterations %.1f, max gap %.2e, all converged %s, mean train "
        "objective %.5f\n",
        C, (long long)d.X.nnz(), wall, 1000 * wall / o.splits, j.auroc.mean, j.auroc.std, j.macro_f1.mean,
        j.accuracy.mean, j.nnz.mean, j.iterations_mean, j.max_gap, j.all_converged ? "yes" : "no", j.objective_mean);
  }
  return 0;
}
