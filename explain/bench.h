// Scoring sparse dictionaries on image annotations the way SAEBench scores language-model SAEs
// (`conceptlab sae bench`, and the scoring of `sae sweep`): one seeded split of the images,
// everything chosen on the training rows and scored on the held-out rows. Per dictionary (an SAE
// file, or a PCA / NMF / k-means baseline fitted on the training rows): reconstruction, sparse
// probing, spurious correlation removal (SCR), targeted probe perturbation (TPP), and, across
// SAEs trained with different seeds, stability. Formulas: docs/sae-bench.md.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cbm/logreg.h"
#include "core/device.h"
#include "core/progress.h"
#include "core/sparse.h"
#include "explain/data.h"
#include "sae/dictionary.h"

namespace cl::explain {

using sae::Dictionary;

// The probes on codes: L2 logistic regression on standardised codes, balanced class weights
// (annotations are rare: accuracy at the 0.5 threshold means balanced accuracy).
inline cbm::LogRegParams bench_probe_defaults() {
  cbm::LogRegParams p;
  p.penalty = "l2";
  p.alpha = 1e-4;
  p.class_weight = "balanced";
  p.tol = 1e-4;
  p.max_iter = 200;
  p.standardize = true;
  p.solver = "lbfgs";
  return p;
}

struct BenchParams {
  double holdout = 0.2;        // fraction of images held out (when no split column is given)
  std::string split_col = "";  // a labels column with 'train' / 'test' per image instead of --holdout
  uint64_t seed = 0;           // the split, the baselines' fitting sample and the random controls
  int min_positives = 5;       // a column is scored when train and held-out rows each have this many of both classes
  std::vector<int> probe_ks = {1, 2, 5, 10, 20};      // sparse probing: latents per probe
  std::vector<int> scr_ns = {1, 2, 5, 10, 20, 50};    // SCR: latents zeroed
  std::vector<int> tpp_ns = {1, 2, 5, 10, 20};        // TPP: latents zeroed per column
  std::string rank_by = "mean_diff";  // latents per column for probing / TPP: mean_diff (SAEBench) | t (Welch t)
  std::vector<std::string> spurious = {};             // SCR pairs "COLUMN:LABEL" (both 0/1 columns)
  int random_draws = 10;       // random-latent controls per SCR n
  double dense_fraction = 0.5;  // a latent is dense when it fires on more than this share of held-out images
  double stable_cosine = 0.9;   // stability: a matched pair counts as reproduced at this decoder cosine
  std::vector<std::string> baselines = {"pca", "nmf", "kmeans"};  // any of pca, nmf, kmeans
  int64_t baseline_latents = 0;  // NMF atoms and k-means centroids (0: NMF the embedding dim, k-means min(dim, fit rows / 10)); PCA keeps every component
  double baseline_l0 = 0;        // L0 budget of PCA and NMF codes (0: the first SAE's held-out L0, rounded)
  int64_t baseline_fit_rows = 20000;  // training rows the baselines are fitted on (a seeded sample)
  int baseline_iters = 50;       // NMF multiplicative updates and k-means Lloyd iterations
  cbm::LogRegParams probe = bench_probe_defaults();  // every probe on codes (sparse probing, SCR, TPP)
  int threads = 0;               // 0 = all cores
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BenchParams, holdout, split_col, seed, min_positives, probe_ks, scr_ns,
                                                tpp_ns, rank_by, spurious, random_draws, dense_fraction, stable_cosine,
                                                baselines, baseline_latents, baseline_l0, baseline_fit_rows,
                                                baseline_iters, probe, threads)
void validate(const BenchParams& p);

// One seeded split of n images: held-out rows (sorted) and training rows (sorted). split_values
// (non-empty: one per image, 'train' | 'test') overrides the holdout fraction; InputError naming
// `what` on other values or an empty side.
struct RowSplit {
  std::vector<int64_t> train, test;
  std::vector<char> is_test;  // [n]
};
RowSplit split_rows(int64_t n, double holdout, uint64_t seed, const std::vector<std::string>& split_values = {},
                    const std::string& what = "");

// 1. Reconstruction on the held-out rows.
struct ReconScores {
  double fvu = std::numeric_limits<double>::quiet_NaN();  // sum |x - x_hat|^2 / sum |x - mean(x)|^2
  double cosine = std::numeric_limits<double>::quiet_NaN();  // mean over rows of cos(x, x_hat)
  double l0 = 0;                    // mean non-zero codes per row
  double dead_fraction = 0;         // latents that fire on no held-out row
  double dense_fraction = 0;        // latents that fire on more than p.dense_fraction of them
  std::vector<double> freq_edges;   // activation-frequency histogram: log10 bin edges
  std::vector<int64_t> freq_counts; // latents per bin (dead latents not counted)
};
ReconScores score_reconstruction(const float* x_nd, const std::vector<float>& x_hat, const CsrMatrix& acts, int64_t n,
                                 int64_t d, double dense_fraction);

// Per latent, per column: mean (and mean square) activation over annotated positive and negative
// training rows.
struct ClassMeans {
  std::vector<std::vector<double>> pos, neg;    // [column][latent]
  std::vector<std::vector<double>> pos2, neg2;  // mean squares
  std::vector<int64_t> n_pos, n_neg;            // [column]
  // Latents by rank_by descending (ties: lower index first), the first k of them: "mean_diff" =
  // |pos - neg| (SAEBench), "t" = |pos - neg| / sqrt(var_pos / n_pos + var_neg / n_neg) (Welch).
  std::vector<int64_t> top(size_t column, int64_t k, const std::string& rank_by = "mean_diff") const;
};
// One pass over acts's rows: y[c][row] in {1, 0, -1 (not annotated)}; only `rows` count.
ClassMeans class_means(const CsrMatrix& acts, const std::vector<ConceptLabels>& y, const std::vector<int64_t>& rows);

// acts restricted to `latents`, in that order: [acts.n_rows, latents.size()].
CsrMatrix select_latents(const CsrMatrix& acts, const std::vector<int64_t>& latents);

struct ProbeScore {
  int k = 0;
  double auroc = std::numeric_limits<double>::quiet_NaN();  // held out
  std::vector<int64_t> latents;
};
struct ColumnBench {
  std::string name;
  int64_t n_pos_train = 0, n_pos_test = 0, n_test = 0;
  std::vector<ProbeScore> probes;  // one per p.probe_ks
  double dense_probe_auroc = std::numeric_limits<double>::quiet_NaN();  // on the embeddings: the ceiling
  std::string note;                // why the column is not scored
};

struct ScrCurve {
  std::string spurious, label;
  int64_t n_biased_train = 0, n_balanced_train = 0, n_eval = 0;
  double auroc_biased = std::numeric_limits<double>::quiet_NaN();    // biased probe, held-out balanced set
  double auroc_unbiased = std::numeric_limits<double>::quiet_NaN();  // probe on a balanced training set, same rows
  std::vector<int> ns;
  std::vector<double> scr;                 // (A_ablated - A_biased) / (A_unbiased - A_biased), per n
  std::vector<double> auroc_ablated;       // per n
  std::vector<double> random_mean, random_lo, random_hi;  // the same score zeroing n random live latents
  std::vector<std::vector<int64_t>> latents;  // zeroed, per n
  std::string note;
};

struct TppScores {
  std::vector<int> ns;
  std::vector<double> tpp;          // mean over columns of (own drop - mean drop of the others), per n
  std::vector<double> own_drop, other_drop;  // their means, per n
  int64_t n_columns = 0;
  std::string note;
};

struct BenchEntry {
  std::string label, kind, path;  // kind: sae | pca | nmf | kmeans
  int64_t n_latents = 0;
  ReconScores recon;
  std::vector<ColumnBench> columns;
  std::vector<double> mean_probe_auroc;  // per p.probe_ks, over scored columns
  std::vector<ScrCurve> scr;             // per spurious pair
  TppScores tpp;
  double seconds = 0;                     // fit (baselines) + encode + scoring
};

struct StabilityScore {
  std::string group;                       // the SAEs compared (file names)
  std::vector<std::string> members;
  double mean_cosine = std::numeric_limits<double>::quiet_NaN();  // of Hungarian-matched decoder rows, over pairs
  double fraction_matched = std::numeric_limits<double>::quiet_NaN();  // matched pairs at >= stable_cosine
  double random_cosine = std::numeric_limits<double>::quiet_NaN();     // two random dictionaries of the same shape
  double random_fraction = std::numeric_limits<double>::quiet_NaN();
};

struct BenchResult {
  std::vector<BenchEntry> entries;
  std::vector<StabilityScore> stability;
  int64_t n_train = 0, n_test = 0;
  double baseline_l0 = 0;
  int64_t baseline_latents = 0;
  std::vector<double> dense_probe_auroc;  // per column (NaN: not scored)
  double mean_dense_probe_auroc = std::numeric_limits<double>::quiet_NaN();
  std::vector<std::string> column_names;
};

struct BenchData {
  const float* x_nd = nullptr;  // [n, d]
  int64_t n = 0, d = 0;
  std::vector<std::string> ids;
  Annotations annotations;            // the scored columns, and the SCR columns
  std::vector<std::string> columns;   // which annotation names are scored by probing and TPP
  std::vector<std::string> split_values;  // per row, when split by column
  std::string embeddings_path;
};

// Reads data.annotations (data.columns plus both columns of every p.spurious pair) and, with
// p.split_col, data.split_values from the labels CSV, joined on data.ids.
void read_bench_labels(BenchData& data, const std::string& csv_path, const std::string& id_col, const BenchParams& p);

struct BenchInputs {
  std::vector<std::string> saes;                     // SAE files, benchmarked in order
  std::vector<std::vector<std::string>> seed_groups;  // each: SAE files of one config trained with different seeds
  std::vector<std::pair<std::string, std::string>> compare;  // stability of any two SAEs
};

// k-means centroids for these settings: baseline_latents (at most the fitted rows), or by
// default min(d, n_fit / 10), at least 2 (k-means with about as many centroids as rows is a lookup table).
int64_t kmeans_centroids(const BenchParams& p, int64_t d, int64_t n_fit);

BenchResult bench_saes(const BenchData& data, const BenchInputs& in, const BenchParams& p, Device device,
                       ProgressSink& progress = silent_progress());

// The scoring of one dictionary on a split (what bench_saes does per dictionary; the sweep calls
// it for each SAE it trains, so the two never disagree).
// What every dictionary is scored against: the split, per column its annotated rows on each
// side, the dense probe, and the SCR pairs' columns.
struct BenchSplit {
  RowSplit rows;
  std::vector<std::string> names;          // scored columns
  std::vector<ConceptLabels> y;            // per scored column, per row: 1 / 0 / -1
  std::vector<std::vector<int64_t>> train, test;  // per column: annotated rows
  std::vector<std::vector<int>> y01;       // per column, per row: 0/1 (0 where not annotated)
  std::vector<std::string> notes;          // per column: why not scored ("" = scored)
  std::vector<int64_t> pos_train, pos_test;
  std::vector<double> dense_probe;         // per column
  struct Pair {
    std::string spurious, label;
    ConceptLabels s, l;
  };
  std::vector<Pair> pairs;
  std::vector<float> x_test;  // [n_test, d]
};

std::shared_ptr<const BenchSplit> make_bench_split(const BenchData& data, const RowSplit& split, const BenchParams& p);
BenchEntry score_dictionary(const Dictionary& dict, const BenchData& data, const BenchSplit& split,
                            const BenchParams& p);

// Stability of two dictionaries' decoder rows: the one-to-one matching of decoder rows with the
// largest total cosine (Hungarian) when both have at most kHungarianMaxLatents latents, else a
// greedy matching by descending cosine (a lower bound); the mean cosine of the matched pairs and
// the fraction of them at >= threshold.
inline constexpr int64_t kHungarianMaxLatents = 2048;
struct MatchedCosines {
  double mean = 0, fraction_above = 0;
};
MatchedCosines matched_decoder_cosine(const std::vector<float>& a_ld, int64_t la, const std::vector<float>& b_ld,
                                      int64_t lb, int64_t d, double threshold);

nlohmann::json to_json(const BenchResult& r, const BenchParams& p);
// One dictionary's scores (an element of bench.json's `entries`; `sae sweep` stores the same per SAE).
nlohmann::json to_json(const BenchEntry& e, const BenchParams& p);
// Every file write_bench_outputs may write for these params (an SCR chart only when its pair was
// scored), relative to its folder: what a command checks against its inputs before running.
std::vector<std::string> bench_output_files(const BenchParams& p);
// out_dir/bench.json, bench.csv (one row per dictionary), bench.md (the tables), probing.png,
// scr_<COLUMN>_<LABEL>.png per scored pair, pareto.png. Returns the names written (relative to out_dir).
std::vector<std::string> write_bench_outputs(const BenchResult& r, const BenchParams& p, const std::string& out_dir,
                         const std::vector<std::string>& inputs);

}  // namespace cl::explain
