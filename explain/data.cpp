// CSV joins for explain: annotation columns and labelled evaluation sets.
#include "explain/data.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_map>

#include "cbm/protocol.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/parse.h"

namespace cl::explain {

Annotations read_annotations(const std::string& csv_path, const std::string& id_col,
                             const std::vector<std::string>& columns, const std::vector<std::string>& ids) {
  if (columns.empty()) throw_usage("no annotation columns given (--columns)");
  const CsvTable t = read_csv(csv_path);
  const auto index = index_by(t, id_col);
  Annotations a;
  std::vector<int64_t> row_of(ids.size(), -1);
  for (size_t i = 0; i < ids.size(); ++i)
    if (auto it = index.find(ids[i]); it != index.end()) row_of[i] = static_cast<int64_t>(it->second), ++a.n_joined;
  if (a.n_joined == 0)
    throw_input("{}: none of the {} image ids joins column '{}' (first id '{}')", csv_path, ids.size(), id_col,
                ids.empty() ? "" : ids[0]);
  for (const auto& name : columns) {
    const size_t c = t.col(name);
    ConceptLabels lab(ids.size(), -1);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (row_of[i] < 0) continue;
      const std::string& cell = t.rows[static_cast<size_t>(row_of[i])][c];
      if (trim(cell).empty()) continue;
      double v;
      if (!parse_number(cell, v) || !(v == 0 || v == 1))
        throw_input("{}: column '{}' has '{}' for id '{}'; expected 0, 1 or empty", csv_path, name, cell, ids[i]);
      lab[i] = static_cast<int8_t>(v);
    }
    a.names.push_back(name);
    a.labels.push_back(std::move(lab));
  }
  return a;
}

std::vector<std::string> read_id_column(const std::string& csv_path, const std::string& id_col,
                                        const std::string& column, const std::vector<std::string>& ids) {
  const CsvTable t = read_csv(csv_path);
  const auto index = index_by(t, id_col);
  const size_t c = t.col(column);
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (const auto& id : ids) {
    const auto it = index.find(id);
    if (it == index.end()) throw_input("{}: image id '{}' has no row (column '{}'), expected one per image", csv_path, id, id_col);
    out.push_back(trim_copy(t.rows[it->second][c]));
  }
  return out;
}

std::vector<float> gather_rows(const float* x_nd, int64_t d, const std::vector<int64_t>& rows) {
  std::vector<float> out(rows.size() * static_cast<size_t>(d));
  for (size_t i = 0; i < rows.size(); ++i) std::copy_n(x_nd + rows[i] * d, d, out.data() + i * static_cast<size_t>(d));
  return out;
}

DenseRows dense_embedding_rows_for_ids(const std::string& path, const std::vector<std::string>& ids) {
  const Embeddings e = read_embeddings(path);
  std::unordered_map<std::string, int64_t> at;
  for (size_t i = 0; i < e.ids.size(); ++i) at.emplace(e.ids[i], static_cast<int64_t>(i));
  DenseRows d;
  d.dim = e.dim;
  d.x_nd.reserve(ids.size() * static_cast<size_t>(e.dim));
  for (const auto& id : ids) {
    auto it = at.find(id);
    if (it == at.end()) throw_input("{}: image id '{}' is missing here", path, id);
    d.x_nd.insert(d.x_nd.end(), e.row(it->second), e.row(it->second) + e.dim);
  }
  return d;
}

CsrMatrix embedding_rows_for_ids(const std::string& path, const std::vector<std::string>& ids) {
  const DenseRows d = dense_embedding_rows_for_ids(path, ids);
  return csr_from_dense(d.x_nd.data(), static_cast<int64_t>(ids.size()), d.dim);
}

Labelled load_labelled(const cbm::Features& features, const cbm::LoadParams& load, const std::string& subgroup_col,
                       const std::string& eval_split, const std::vector<std::string>* classes) {
  Labelled l;
  l.data = cbm::load_dataset(load, features, classes);
  const auto& d = l.data;
  std::vector<int64_t> valid, test;
  if (!load.split_col.empty()) {
    cbm::rows_from_split_col(d, l.train_rows, valid, test);
    for (auto r : l.train_rows) l.train_y.push_back(d.y[static_cast<size_t>(r)]);
    for (size_t i = 0; i < d.split.size(); ++i)
      if (d.split[i] == eval_split) l.eval.rows.push_back(static_cast<int64_t>(i));
    if (l.eval.rows.empty())
      throw_input("{}: no rows with '{}' = '{}' to evaluate on", load.labels_path, load.split_col, eval_split);
  } else {
    for (int64_t i = 0; i < d.X.n_rows; ++i) l.eval.rows.push_back(i);
  }
  for (auto r : l.eval.rows) l.eval.y.push_back(d.y[static_cast<size_t>(r)]);
  l.eval.classes = d.classes;
  if (!subgroup_col.empty()) {
    const CsvTable t = read_csv(load.labels_path);
    const auto index = index_by(t, load.id_col);
    const size_t c = t.col(subgroup_col);
    std::map<std::string, int> code;
    for (auto r : l.eval.rows) {
      const std::string v = trim_copy(t.rows[index.at(d.ids[static_cast<size_t>(r)])][c]);
      if (v.empty()) {
        l.eval.group.push_back(-1);
        continue;
      }
      auto it = code.emplace(v, static_cast<int>(code.size())).first;
      l.eval.group.push_back(it->second);
    }
    l.eval.group_names.resize(code.size());
    for (const auto& [v, k] : code) l.eval.group_names[static_cast<size_t>(k)] = subgroup_col + "=" + v;
    if (code.empty()) throw_input("{}: column '{}' is empty on every evaluated row", load.labels_path, subgroup_col);
  }
  return l;
}

}  // namespace cl::explain
