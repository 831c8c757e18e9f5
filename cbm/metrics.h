// Classification metrics and the seeded splitters used by the CBM/probe protocols.
// Every metric takes explicit row subsets so bootstrap resampling (explain's intervention
// intervals) can call them with resampled index lists without copying data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cl::cbm {

// AUROC of scores for positives (labels 1) vs negatives (0); ties count one half.
// O(n log n) by sorting (Mann-Whitney U with mid-ranks). NaN when one class is absent.
double auroc(const std::vector<double>& scores, const std::vector<int>& labels01);

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
