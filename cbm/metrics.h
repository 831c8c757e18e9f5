// Classification metrics and the seeded splitters used by the CBM/probe protocols.
// Every metric takes explicit row subsets so bootstrap resampling (explain's intervention
// intervals) can call them with resampled index lists without copying data.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cl::cbm {

// Average precision (area under the precision-recall step curve, scikit-learn's definition:
// sum over distinct thresholds, high to low, of (recall gain) x precision; tied scores form one
// threshold). NaN without positives; NaN when a score is NaN.
double average_precision(const std::vector<double>& scores, const std::vector<int>& labels01);

// The same over scores sorted ascending with an implicit tie block (see auroc_sorted).
template <typename S, typename L>
double average_precision_sorted(const S* scores_sorted, const L* labels01, size_t n, double extra = 0.0,
                                int64_t n_pos_extra = 0, int64_t n_neg_extra = 0) {
  double n_pos = static_cast<double>(n_pos_extra);
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(static_cast<double>(scores_sorted[i]))) return std::numeric_limits<double>::quiet_NaN();
    n_pos += labels01[i] ? 1 : 0;
  }
  if (n_pos == 0 || std::isnan(extra)) return std::numeric_limits<double>::quiet_NaN();
  double tp = 0, fp = 0, ap = 0;
  bool block_done = n_pos_extra == 0 && n_neg_extra == 0;
  // Walk thresholds from the highest score down: groups from the end of the ascending order.
  for (size_t i = n; i > 0 || !block_done;) {
    const bool block_first = !block_done && (i == 0 || extra > static_cast<double>(scores_sorted[i - 1]));
    double gp = 0, gn = 0;
    if (block_first || (!block_done && static_cast<double>(scores_sorted[i - 1]) == extra)) {
      gp += static_cast<double>(n_pos_extra), gn += static_cast<double>(n_neg_extra);
      block_done = true;
    }
    if (!block_first) {
      const S v = scores_sorted[i - 1];
      do {
        (labels01[i - 1] ? gp : gn) += 1;
        --i;
      } while (i > 0 && scores_sorted[i - 1] == v);
    }
    tp += gp, fp += gn;
    if (gp > 0) ap += (gp / n_pos) * (tp / (tp + fp));
  }
  return ap;
}

// AUROC of scores for positives (labels 1) vs negatives (0); ties count one half.
// O(n log n) by sorting (Mann-Whitney U). NaN when one class is absent or a score is NaN.
double auroc(const std::vector<double>& scores, const std::vector<int>& labels01);

// The one Mann-Whitney sweep behind every AUROC here. scores_sorted[0..n) ascending (no NaN)
// with their 0/1 labels, plus an implicit tie block of n_pos_extra positives and n_neg_extra
// negatives all scoring `extra` (a sparse score vector's zeros: concept matching passes a
// latent's non-zeros sorted and its zeros as the block). NaN when a class is absent or a score
// is NaN (total on any input: every pass of the sweep consumes at least one score).
template <typename S, typename L>
double auroc_sorted(const S* scores_sorted, const L* labels01, size_t n, double extra = 0.0, int64_t n_pos_extra = 0,
                    int64_t n_neg_extra = 0) {
  double n_pos = static_cast<double>(n_pos_extra), n_neg = static_cast<double>(n_neg_extra);
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(static_cast<double>(scores_sorted[i]))) return std::numeric_limits<double>::quiet_NaN();
    (labels01[i] ? n_pos : n_neg) += 1;
  }
  if (n_pos == 0 || n_neg == 0 || std::isnan(extra)) return std::numeric_limits<double>::quiet_NaN();
  double u = 0, neg_below = 0;
  bool block_done = n_pos_extra == 0 && n_neg_extra == 0;
  for (size_t i = 0; i < n || !block_done;) {
    const bool block_first = !block_done && (i == n || extra < static_cast<double>(scores_sorted[i]));
    double gp = 0, gn = 0;
    if (block_first || (!block_done && static_cast<double>(scores_sorted[i]) == extra)) {
      gp += static_cast<double>(n_pos_extra), gn += static_cast<double>(n_neg_extra);
      block_done = true;
    }
    if (!block_first) {
      const S v = scores_sorted[i];
      do {
        (labels01[i] ? gp : gn) += 1;
        ++i;
      } while (i < n && scores_sorted[i] == v);
    }
    u += gp * (neg_below + 0.5 * gn);
    neg_below += gn;
  }
  return u / (n_pos * n_neg);
}

// y in [0, C); proba [n, C] row-major. Binary (C == 2): AUROC of proba[:,1];
// multiclass: macro mean of one-vs-rest AUROCs over classes present with both signs.
double auroc_multi(const std::vector<int>& y, const std::vector<double>& proba, int C);

// Confusion matrix [C, C] row-major: counts[true * C + pred].
std::vector<int64_t> confusion_matrix(const std::vector<int>& y, const std::vector<int>& pred, int C);

// From a confusion matrix: accuracy, macro-F1 (over classes with any true or predicted
// member; F1 of a class with none predicted and none true is skipped), balanced accuracy
// (mean recall over classes with true members).
double accuracy(const std::vector<int64_t>& cm, int C);
double macro_f1(const std::vector<int64_t>& cm, int C);
double balanced_accuracy(const std::vector<int64_t>& cm, int C);

// Argmax of each row of proba [n, C].
std::vector<int> argmax_rows(const std::vector<double>& proba, int C);

struct Metrics {
  double auroc = 0, macro_f1 = 0, accuracy = 0, balanced_accuracy = 0;
  std::vector<int64_t> confusion;  // [C, C]
};
Metrics evaluate(const std::vector<int>& y, const std::vector<double>& proba, int C);
nlohmann::json to_json(const Metrics& m, int C);

struct Split {
  std::vector<int64_t> train, test;  // sorted row indices
};

// Stratified random split: per class, round(test_size * n_c) rows (at least 1, at most
// n_c - 1) go to test. Reproducible from (seed, index). Throws InputError (naming `what`)
// when a class has fewer than 2 members.
// class_names (optional) are used in error messages instead of class indices.
Split stratified_split(const std::vector<int>& y, int C, double test_size, uint64_t seed, const std::string& what,
                       const std::vector<std::string>& class_names = {});

// k rows per class for training, the rest for testing (k-shot probes). Throws InputError
// when a class has <= k members.
Split kshot_split(const std::vector<int>& y, int C, int k, uint64_t seed, const std::string& what,
                  const std::vector<std::string>& class_names = {});

// Mean, sample std and the 2.5/97.5 percentiles (linear interpolation) of values.
struct Summary {
  double mean = 0, std = 0, lo = 0, hi = 0;
};
Summary summarize(const std::vector<double>& v);
nlohmann::json to_json(const Summary& s);

// Bootstrap of evaluate() over rows resampled with replacement (n_boot draws, seeded):
// summaries (mean/std/percentile 95% interval) of AUROC, macro-F1, accuracy, balanced accuracy.
// Draws where a class is missing give NaN AUROC and are skipped by summarize().
struct BootstrapResult {
  Summary auroc, macro_f1, accuracy, balanced_accuracy;
};
BootstrapResult bootstrap_metrics(const std::vector<int>& y, const std::vector<double>& proba, int C, int n_boot,
                                  uint64_t seed);
nlohmann::json to_json(const BootstrapResult& b);

}  // namespace cl::cbm
