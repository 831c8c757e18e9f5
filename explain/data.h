// Joining what explain reads: annotation columns of a CSV as 0/1 concept labels for the rows of an
// activations (or embeddings) file, and a labelled evaluation set (label, optional split and
// subgroup columns) for the intervention experiments. Errors name the file, column and value.
#pragma once

#include <string>
#include <vector>

#include "cbm/dataset.h"
#include "explain/concepts.h"
#include "explain/experiment.h"

namespace cl::explain {

struct Annotations {
  std::vector<std::string> names;      // the columns
  std::vector<ConceptLabels> labels;   // per column, per id: 1, 0, or -1 (empty cell / id not in the CSV)
  int64_t n_joined = 0;                // ids found in the CSV
};

// Columns must hold only 0, 1 (any numeric spelling) or empty cells; InputError otherwise, and
// when no id joins.
Annotations read_annotations(const std::string& csv_path, const std::string& id_col,
                             const std::vector<std::string>& columns, const std::vector<std::string>& ids);

// One column's (trimmed) cell per id, in the order of `ids`; InputError naming the CSV and the
// first id without a row.
std::vector<std::string> read_id_column(const std::string& csv_path, const std::string& id_col,
                                        const std::string& column, const std::vector<std::string>& ids);
// Rows of an embeddings file in the order of `ids`, as CSR (dense rows, zeros dropped); InputError
// naming the file and the first id it lacks.
CsrMatrix embedding_rows_for_ids(const std::string& embeddings_path, const std::vector<std::string>& ids);

// The same rows dense: x_nd = [ids.size(), dim].
struct DenseRows {
  std::vector<float> x_nd;
  int64_t dim = 0;
};
DenseRows dense_embedding_rows_for_ids(const std::string& embeddings_path, const std::vector<std::string>& ids);

// Rows `rows` of x_nd [n, d], in that order: [rows.size(), d].
std::vector<float> gather_rows(const float* x_nd, int64_t d, const std::vector<int64_t>& rows);
// A labelled dataset over the features (cbm::load_dataset) plus an evaluation set over its rows:
// the rows of `eval_split` when a split column is given (else all rows), the training rows, and
// the subgroup column's values when given.
struct Labelled {
  cbm::Dataset data;
  EvalSet eval;
  std::vector<int64_t> train_rows;  // rows with split 'train' (empty without a split column)
  std::vector<int> train_y;
};
Labelled load_labelled(const cbm::Features& features, const cbm::LoadParams& load, const std::string& subgroup_col,
                       const std::string& eval_split, const std::vector<std::string>* classes = nullptr);

}  // namespace cl::explain
