// explain_bench: the explain module's speed on a generated activation set (default 100,000 images
// x 8,192 latents, ~32 non-zeros per row, 20 binary concept columns tied to some latents): time to
// build the statistics + inverted index, to compute the full latent x concept AUROC matrix, to
// open the written index file, and for one CBM-level intervention (zeroing 5 latents) over all
// rows as a sparse logit delta. Targets: index and AUROC matrix < 10 s each on 2 cores, opening
// < 1 s, one intervention < 50 ms.
// Usage: explain_bench [--n 100000] [--latents 8192] [--k 32] [--concepts 20] [--dir /tmp]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "cbm/logreg.h"
#include "core/latent_index.h"
#include "core/random.h"
#include "explain/concepts.h"
#include "explain/match.h"
#include "explain/intervention.h"
#include "explain/stats.h"

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  int64_t n = 100000, L = 8192, k = 32, C = 20;
  std::string dir = std::filesystem::temp_directory_path().string();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--n") n = std::stoll(argv[i + 1]);
    else if (a == "--latents") L = std::stoll(argv[i + 1]);
    else if (a == "--k") k = std::stoll(argv[i + 1]);
    else if (a == "--concepts") C = std::stoll(argv[i + 1]);
    else if (a == "--dir") dir = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: explain_bench [--n N] [--latents L] [--k K] [--concepts C] [--dir DIR]\n");
      return 2;
    }
  }
  auto secs = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  // Activations: each row ~k latents, a few popular ones; concept c is carried by latent 10c.
  cl::Rng rng(1);
  cl::CsrMatrix acts;
  acts.n_cols = L;
  std::vector<cl::explain::ConceptLabels> concepts(static_cast<size_t>(C), cl::explain::ConceptLabels(static_cast<size_t>(n)));
  std::vector<int32_t> cols;
  std::vector<float> vals;
  for (int64_t i = 0; i < n; ++i) {
    cols.clear(), vals.clear();
    for (int64_t c = 0; c < C; ++c) {
      const bool on = rng.uniform() < 0.3;
      concepts[static_cast<size_t>(c)][static_cast<size_t>(i)] = rng.uniform() < 0.05 ? -1 : on;
      if (on && rng.uniform() < 0.7) cols.push_back(static_cast<int32_t>(10 * c)), vals.push_back(float(1 + rng.uniform()));
    }
    while (static_cast<int64_t>(cols.size()) < k) {
      cols.push_back(static_cast<int32_t>(rng.below(static_cast<uint64_t>(L)))), vals.push_back(float(rng.uniform() * 3));
    }
    acts.append_row(cols.data(), vals.data(), static_cast<int64_t>(cols.size()));  // sorts; duplicates unlikely
  }
  // append_row keeps duplicate columns: drop them so the CSR is valid.
  cl::CsrMatrix clean;
  clean.n_cols = L;
  for (int64_t i = 0; i < n; ++i) {
    cols.clear(), vals.clear();
    for (auto q = acts.indptr[i]; q < acts.indptr[i + 1]; ++q)
      if (cols.empty() || cols.back() != acts.indices[q]) cols.push_back(acts.indices[q]), vals.push_back(acts.values[q]);
    clean.append_row_sorted(cols.data(), vals.data(), static_cast<int64_t>(cols.size()));
  }
  acts = std::move(clean);
  std::printf("explain_bench: %lld images x %lld latents, %lld non-zeros (%.1f per row), %lld concepts\n",
              (long long)n, (long long)L, (long long)acts.nnz(), double(acts.nnz()) / n, (long long)C);

  auto t0 = Clock::now();
  cl::LatentIndex idx = cl::explain::build_index(acts);
  const double t_index = secs(t0);
  const std::string path = dir + "/explain_bench.index.h5";
  t0 = Clock::now();
  cl::write_latent_index(path, idx);
  const double t_write = secs(t0);
  t0 = Clock::now();
  const cl::LatentIndex back = cl::read_latent_index(path);
  const double t_open = secs(t0);
  std::filesystem::remove(path);

  t0 = Clock::now();
  const cl::CscMatrix csc = cl::to_csc(acts);
  const auto aucs = cl::explain::latent_aurocs(csc, concepts);
  const double t_auroc = secs(t0);
  double best0 = 0;
  for (double a : aucs[0]) best0 = std::max(best0, std::isnan(a) ? 0.0 : a);

  cl::cbm::LogRegFit m;
  m.n_classes = 2;
  m.n_rows = 1;
  m.n_features = L;
  for (int64_t j = 0; j < L; ++j) m.weights.push_back(j % 7 == 0 ? rng.uniform() - 0.5 : 0.0);
  m.bias = {0.1};
  const auto base = cl::cbm::decision_function(acts, m);
  std::vector<cl::explain::LatentEdit> edits;
  for (int64_t j : {0, 10, 20, 30, 40}) edits.push_back({j, cl::explain::EditOp::zero, 0});
  double t_edit = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    t0 = Clock::now();
    const auto z = cl::explain::edited_logits(acts, m, edits, base);
    t_edit = std::min(t_edit, secs(t0));
    if (z.size() != base.size()) return 1;
  }

  // The full match (best latents, named, the K-latent sets on held-out splits): the L1 paths fit
  // dozens of models per concept and split on the same rows.
  std::vector<std::string> names;
  for (int64_t c = 0; c < C; ++c) names.push_back("c" + std::to_string(c));
  t0 = Clock::now();
  const auto match = cl::explain::match_concepts(acts, names, concepts, nullptr, cl::explain::MatchParams{});
  const double t_match = secs(t0);
  // One L1 path's fits: converting the rows to columns per fit (fit_logreg on the CSR, as before)
  // against one column view for the path.
  std::vector<int> y0(static_cast<size_t>(n));
  std::vector<int64_t> rows0;
  for (int64_t i = 0; i < n; ++i)
    if (concepts[0][static_cast<size_t>(i)] >= 0) rows0.push_back(i), y0[static_cast<size_t>(i)] = concepts[0][static_cast<size_t>(i)];
  cl::cbm::LogRegParams lp;
  lp.penalty = "l1";
  lp.standardize = true;
  lp.max_iter = 200;
  const double hi = cl::cbm::l1_alpha_max(acts, y0, rows0, true);
  const auto alphas = cl::cbm::log_alphas(hi * 0.999, hi * 0.1, 8);
  t0 = Clock::now();
  for (double a : alphas) lp.alpha = a, (void)cl::cbm::fit_logreg(acts, y0, 2, lp, rows0);
  const double t_path_csr = secs(t0);
  t0 = Clock::now();
  const auto design = cl::cbm::make_design(acts, rows0, true);
  for (double a : alphas) lp.alpha = a, (void)cl::cbm::fit_logreg(*design, y0, 2, lp, rows0);
  const double t_path_design = secs(t0);

  std::printf("index build (stats + inverted index): %.2f s   [target < 10 s]\n", t_index);
  std::printf("index write: %.2f s, open (read + validate): %.3f s   [target < 1 s]\n", t_write, t_open);
  std::printf("AUROC matrix (%lld concepts x %lld latents, incl. CSC): %.2f s   [target < 10 s]; concept 0 best %.3f\n",
              (long long)C, (long long)L, t_auroc, best0);
  std::printf("one CBM intervention (5 latents zeroed, %lld rows): %.1f ms   [target < 50 ms]\n", (long long)n, 1e3 * t_edit);
  std::printf("full match (%lld concepts, best latents + K-latent sets over %d splits): %.2f s   [target < 15 s]; "
              "concept 0 set AUROC %.3f\n",
              (long long)C, cl::explain::MatchParams{}.splits, t_match, match.concepts[0].set_auroc);
  std::printf("8 fits of an L1 path (concept 0): %.2f s converting per fit, %.2f s with one design\n", t_path_csr,
              t_path_design);
  return back.n_rows == n ? 0 : 1;
}
