// Evaluation protocols: the reference's repeated stratified splits (mean model saved), a fixed
// official split with optional alpha tuning on the validation rows, the alpha path, and the
// linear-probe protocols from the literature (panderm, kshot). Splits run in parallel
// (core/parallel.h); each split's result depends only on (seed, split index), never on the
// thread count. Results are structs; JSON is made only where the CLI prints or a file stores it.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cbm/dataset.h"
#include "cbm/logreg.h"
#include "cbm/metrics.h"
#include "core/linear_model.h"
#include "core/progress.h"

namespace cl::cbm {

struct ProtocolParams {
  LogRegParams model;
  int splits = 50;          // repeated stratified splits (ignored with a fixed split)
  double test_size = 0.2;
  uint64_t seed = 0;
  int threads = 0;          // 0 = all cores
  std::string tune;         // "" or "alpha" (fixed split with validation rows only)
  std::vector<double> tune_alphas = {1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5};
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ProtocolParams, model, splits, test_size, seed, threads, tune,
                                                tune_alphas)

// Throws UsageError on out-of-range values (splits < 1, test_size outside (0, 1), ...).
void validate(const ProtocolParams& p);

struct SplitResult {
  Metrics metrics;
  std::vector<int64_t> nnz_per_row;
  int iterations = 0;
  double gap = 0;
  double objective = 0;  // training objective at the solution
  bool converged = false;
};

// One alpha of a warm-started regularisation path, scored on held-out rows.
struct AlphaPathPoint {
  double alpha = 0;
  Metrics metrics;
  std::vector<int64_t> nnz_per_row;
  int64_t nnz = 0;
  int iterations = 0;
  double gap = 0;
};

struct TuningPoint {
  double alpha = 0, valid_auroc = 0;
  int64_t nnz = 0;
};

// Everything a protocol measured, as values. to_json() gives the CLI's --json object.
struct ProtocolReport {
  std::string protocol;  // "repeated_splits" | "fixed_split"
  int64_t n_rows = 0, n_features = 0;
  std::vector<std::string> classes;
  std::vector<int64_t> class_counts;
  // Over the splits (one value for a fixed split): test metrics and weight counts.
  Summary auroc, macro_f1, accuracy, balanced_accuracy, nnz;
  std::vector<double> nnz_per_row_mean;
  double iterations_mean = 0, objective_mean = 0, max_gap = 0;
  bool all_converged = true;
  // repeated_splits
  int n_splits = 0;
  double test_size = 0;
  uint64_t seed = 0;
  double wall_s = 0;
  int64_t mean_model_nnz = 0;
  // fixed_split
  int64_t n_train = 0, n_valid = 0, n_test = 0;
  double alpha = std::numeric_limits<double>::quiet_NaN();  // the alpha fitted (tuned or given)
  Metrics test, valid;
  bool has_valid = false;
  std::vector<TuningPoint> tuning;
  // probes: lambda = M * C / 100 (NaN otherwise)
  double lambda = std::numeric_limits<double>::quiet_NaN();
  std::vector<AlphaPathPoint> alpha_path;  // when asked for
};
// per_split adds the per-split metric lists (repeated splits).
nlohmann::json to_json(const ProtocolReport& r, const std::vector<SplitResult>& splits, bool per_split = true);
nlohmann::json to_json(const std::vector<AlphaPathPoint>& path, int n_classes);

struct ProtocolResult {
  LogRegFit model;                  // mean of split fits (or the fixed-split fit)
  std::vector<SplitResult> splits;  // test metrics per split
  ProtocolReport report;
  nlohmann::json to_json(bool per_split = true) const { return cbm::to_json(report, splits, per_split); }
};

// 50 (p.splits) stratified test_size splits; the model is the mean of the split weights/biases.
ProtocolResult run_repeated_splits(const Dataset& d, const ProtocolParams& p, ProgressSink& progress = silent_progress());

// One fit on train, metrics on test (and valid when non-empty). With p.tune == "alpha" the
// alpha of p.tune_alphas with the best validation AUROC is used (ties: the larger alpha).
ProtocolResult run_fixed_split(const Dataset& d, const std::vector<int64_t>& train, const std::vector<int64_t>& valid,
                               const std::vector<int64_t>& test, const ProtocolParams& p);

// Rows of a split column: train / valid|val|validation / test (others, e.g. empty, ignored).
void rows_from_split_col(const Dataset& d, std::vector<int64_t>& train, std::vector<int64_t>& valid,
                         std::vector<int64_t>& test);

// Warm-started path on train rows, evaluated on test rows: per alpha the non-zeros per class,
// test metrics, iterations and optimality gap.
std::vector<AlphaPathPoint> alpha_path(const Dataset& d, const std::vector<int64_t>& train,
                                       const std::vector<int64_t>& test, const LogRegParams& p,
                                       const std::vector<double>& alphas);

// Linear probes on embeddings.
struct ProbeParams {
  std::string protocol = "panderm";  // panderm | kshot
  std::vector<int> shots = {1, 2, 4, 8, 16};
  int seeds = 5;                     // kshot repetitions per k
  int splits = 5;                    // panderm without an official split: stratified splits
  double test_size = 0.2;
  uint64_t seed = 0;
  int max_iter = 1000;
  bool standardize = false;
  int threads = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ProbeParams, protocol, shots, seeds, splits, test_size, seed, max_iter,
                                                standardize, threads)

void validate(const ProbeParams& p);

// panderm L2 strength: lambda = M * C / 100 on the sum-of-losses objective (sklearn C = 1/lambda),
// i.e. alpha = lambda / n_train on our mean-loss objective.
double panderm_alpha(int64_t dim, int n_classes, int64_t n_train);

// panderm: official split when train/test given (non-empty), else p.splits stratified splits.
ProtocolResult run_probe_panderm(const Dataset& d, const ProbeParams& p, const std::vector<int64_t>& train,
                                 const std::vector<int64_t>& test, ProgressSink& progress = silent_progress());

// k-shot: per k, test metrics summarised over p.seeds draws of k training rows per class.
struct KshotPoint {
  int k = 0, seeds = 0;
  Summary accuracy, macro_f1, auroc, balanced_accuracy;
};
std::vector<KshotPoint> run_probe_kshot(const Dataset& d, const ProbeParams& p);
nlohmann::json to_json(const std::vector<KshotPoint>& shots);

// The saved format (weights as float32, classes, metrics and config attached).
LinearModel to_linear_model(const LogRegFit& f, const Dataset& d, const nlohmann::json& metrics,
                            const nlohmann::json& config);
LogRegFit from_linear_model(const LinearModel& m);

}  // namespace cl::cbm
