// Penalised logistic regression (binary and multinomial) on sparse CSR features: the model
// behind concept bottlenecks (features = SAE latents) and linear probes (features = embeddings).
// Objective (scikit-learn SGDClassifier convention):
//   mean_i( w_i * logloss_i ) + alpha * ( l1_ratio * |W|_1 + (1 - l1_ratio) / 2 * |W|_2^2 )
// with sample weights w_i (1, or n / (C * n_class) for class_weight "balanced"); intercepts are
// never penalised. penalty l1 -> l1_ratio = 1, l2 -> 0, none -> alpha = 0.
// Solvers: L1/elastic-net use proximal Newton with coordinate descent on an active set
// (GLMNET / newGLMNET); L2/none use L-BFGS. Both stop when the largest violation of the
// (sub)gradient optimality conditions is <= tol (that number is reported as `gap`).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/sparse.h"

namespace cl::cbm {

struct LogRegParams {
  std::string penalty = "l1";       // l1 | l2 | elasticnet | none
  double alpha = 1e-3;              // penalty strength (per-sample mean loss scale)
  double l1_ratio = 0.15;           // elasticnet only: share of the L1 term
  std::string class_weight = "none";  // none | balanced
  double tol = 1e-4;                // max (sub)gradient optimality violation at convergence
  int max_iter = 1000;              // outer iterations (Newton steps / L-BFGS iterations)
  bool standardize = false;         // scale columns to unit std (never centred, so sparsity stays)
  bool fit_intercept = true;
  std::string solver = "auto";      // auto (cd for l1/elasticnet, lbfgs otherwise) | cd | lbfgs
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LogRegParams, penalty, alpha, l1_ratio, class_weight, tol, max_iter,
                                                standardize, fit_intercept, solver)

// Throws UsageError on unknown penalty/class_weight/solver or out-of-range numbers.
void validate(const LogRegParams& p);

// A fitted model in the original feature scale (standardisation folded in).
// Binary: n_rows = 1, the logit of class 1. Multiclass: one row per class (softmax).
struct LogRegFit {
  int n_classes = 0;
  int64_t n_rows = 0, n_features = 0;
  std::vector<double> weights;  // [n_rows, n_features] row-major
  std::vector<double> bias;     // [n_rows]
  int iterations = 0;
  double gap = 0;               // final max optimality violation (in the solver's scale)
  double objective = 0;
  bool converged = false;
  std::vector<int64_t> nnz_per_row() const;
  int64_t nnz() const;
};

// Fits on the rows listed in `rows` (all rows when empty) of X ([n, F]); y[i] in [0, n_classes)
// for every row of X. warm (optional) is a previous fit of the same shape to start from.
LogRegFit fit_logreg(const CsrMatrix& X, const std::vector<int>& y, int n_classes, const LogRegParams& p,
                     const std::vector<int64_t>& rows = {}, const LogRegFit* warm = nullptr);

// The rows of X by column (scaled when standardising): what a fit on those rows starts from.
// fit_logreg(X, ...) builds one per call; many fits on the same rows and standardize setting (an
// L1 path and its bisection) build it once and give the same fits.
struct Design;
std::shared_ptr<const Design> make_design(const CsrMatrix& X, const std::vector<int64_t>& rows, bool standardize);
// The same from X already by column (X_by_col = to_csc(X)); rows strictly increasing here.
std::shared_ptr<const Design> make_design(const CscMatrix& X_by_col, const std::vector<int64_t>& rows, bool standardize);

// The coordinate-descent solver where one fit ended, for the next fit on the same design, labels
// and class weights (an L1 path and its bisection): weights, logits, probabilities, loss and a
// reference gradient of every feature with its residual. Starting from it usually costs no pass
// over X; starting from a LogRegFit's weights costs a pass and a loss evaluation. Opaque to callers.
struct FitState {
  uint64_t key = 0;  // the design, labels and class weights it belongs to (0: empty)
  std::vector<double> V, b, z, p;
  std::vector<std::vector<double>> G_ref, R_ref;  // per class: [F] exact at the residual [n]
  double loss = 0;
};

// start (optional): the end of an earlier fit on the same design and labels to start from (an
// empty state: start from the class priors). end (optional) receives where this fit ended (CD
// solver; an L-BFGS fit leaves it empty). They may be the same object.
LogRegFit fit_logreg(const Design& D, const std::vector<int>& y, int n_classes, const LogRegParams& p,
                     const std::vector<int64_t>& rows = {}, const FitState* start = nullptr,
                     FitState* end = nullptr);

// Logits [rows.size(), n_rows] row-major, X W^T + b (all rows when rows is empty): a sparse x
// dense product (Eigen) over the stored non-zeros.
std::vector<double> decision_function(const CsrMatrix& X, const LogRegFit& m, const std::vector<int64_t>& rows = {});
// Logits [n, K] (K = 1: the logit of class 1) -> probabilities [n, n_classes] (sigmoid / softmax).
std::vector<double> proba_from_logits(const std::vector<double>& logits, int64_t K, int n_classes);
// Class probabilities [rows.size(), n_classes] row-major (all rows when rows is empty).
std::vector<double> predict_proba(const CsrMatrix& X, const LogRegFit& m, const std::vector<int64_t>& rows = {});

// Regularisation path: alphas visited from largest to smallest, each warm-started from the
// previous; fits returned in the order of `alphas` as given.
std::vector<LogRegFit> fit_alpha_path(const CsrMatrix& X, const std::vector<int>& y, int n_classes,
                                      const LogRegParams& p, const std::vector<double>& alphas,
                                      const std::vector<int64_t>& rows = {});

// Binary problems: the smallest L1 alpha at which the fit on `rows` keeps every weight at zero
// (the start of an L1 path): max_j |mean_i x_ij (p0 - y_i)| with p0 the intercept-only fit, in
// the standardised scale when p.standardize. Class weights are ignored.
double l1_alpha_max(const CsrMatrix& X, const std::vector<int>& y, const std::vector<int64_t>& rows, bool standardize);
double l1_alpha_max(const Design& D, const std::vector<int>& y, const std::vector<int64_t>& rows);

// Log-spaced alphas from hi down to lo (n >= 2).
std::vector<double> log_alphas(double hi, double lo, int n);

}  // namespace cl::cbm
