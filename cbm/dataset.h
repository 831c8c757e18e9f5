// Features (conceptlab.activations CSR or conceptlab.embeddings dense) joined with a labels CSV
// on an id column, ready for fitting: rows follow the CSV, labels become class indices.
#pragma once

#include <string>
#include <vector>

#include "core/csv.h"
#include "core/sparse.h"

namespace cl::cbm {

struct LoadParams {
  std::string features_path, labels_path;
  std::string label_col;
  std::string id_col = kDefaultIdCol;
  std::string split_col;      // optional: kept as strings per row (train/valid/test)
  bool drop_missing = true;   // drop CSV rows whose label is empty (count logged); else error
};

struct Dataset {
  std::string features_path, labels_path, label_col;
  std::string features_kind;  // "activations" | "embeddings"
  CsrMatrix X;                // [n, F] rows in CSV order (never densified)
  std::vector<std::string> ids;
  std::vector<int> y;                // [n] class index
  std::vector<std::string> classes;  // class names; numeric labels sort numerically
  std::vector<std::string> split;    // [n] split_col values when asked
  int n_classes() const { return static_cast<int>(classes.size()); }
};

// Reads features of either format (detected from the file's `format` attribute).
// Errors (InputError) name the file and value: NaN/Inf activations, unknown format.
struct Features {
  std::string kind;
  std::vector<std::string> ids;
  CsrMatrix X;
};
Features read_features(const std::string& path);

// Joins and encodes labels. With `classes` given (evaluating a saved model) labels are mapped
// onto that order and unknown labels are an error; otherwise classes are derived and a column
// with a single class is an error. CSV ids missing from the features are an error reporting how
// many and the first few.
Dataset load_dataset(const LoadParams& p, const std::vector<std::string>* classes = nullptr);
Dataset load_dataset(const LoadParams& p, const Features& f, const std::vector<std::string>* classes = nullptr);

// Row indices of ids in d (one id per line in a text file); error naming the file and the
// first missing ids.
std::vector<int64_t> rows_for_id_file(const Dataset& d, const std::string& path);
// InputError naming both files when the sorted row lists a and b share a row.
void check_disjoint(const std::vector<int64_t>& a, const std::vector<int64_t>& b, const Dataset& d,
                    const std::string& a_path, const std::string& b_path);

// Class order: numeric when every label parses as a finite number (one class per value, sorted by
// value, named by the value's shortest spelling, so "1", "1.0" and "+1" are one class "1"), else
// one class per distinct string, sorted.
std::vector<std::string> derive_classes(const std::vector<std::string>& labels);
// Index of label among classes: equal text, else equal numeric value; -1 when none.
int class_index(const std::vector<std::string>& classes, const std::string& label);

}  // namespace cl::cbm
