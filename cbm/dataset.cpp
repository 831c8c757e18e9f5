// Loading features + labels for cbm/probe. Dense embeddings are stored as CSR too (zeros
// dropped) so one solver serves both; at probe sizes (1e3 x 1e3) that costs nothing.
#include "cbm/dataset.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "core/activations.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/manifest.h"
#include "core/h5.h"
#include "core/parse.h"

namespace cl::cbm {

namespace {

std::string first_few(const std::vector<std::string>& v, size_t n = 5) {
  std::string s;
  for (size_t i = 0; i < std::min(n, v.size()); ++i) s += (i ? ", " : "") + std::string("'") + v[i] + "'";
  if (v.size() > n) s += ", ...";
  return s;
}

}  // namespace

Features read_features(const std::string& path) {
  const std::string format = dataset_format(path);  // a manifest: its parts' format
  Features out;
  if (format == kActivationsFormat) {
    auto a = read_activations(path);  // validated: finite values, sorted in-range indices
    out.kind = "activations";
    out.ids = std::move(a.ids);
    out.X = std::move(a.acts);
  } else if (format == kEmbeddingsFormat) {
    auto e = read_embeddings(path, true);
    out.kind = "embeddings";
    out.ids = std::move(e.ids);
    out.X = csr_from_dense(e.data.data(), e.n, e.dim);
  } else {
    throw_input("{}: format '{}'; expected {} or {}", path, format, kActivationsFormat, kEmbeddingsFormat);
  }
  return out;
}

namespace {
bool finite_number(const std::string& s, double& v) { return parse_number(s, v) && std::isfinite(v); }
}  // namespace

std::vector<std::string> derive_classes(const std::vector<std::string>& labels) {
  std::vector<std::string> uniq(labels.begin(), labels.end());
  std::sort(uniq.begin(), uniq.end());
  uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
  std::vector<double> vals(uniq.size());
  bool numeric = !uniq.empty();
  for (size_t i = 0; i < uniq.size() && numeric; ++i) numeric = finite_number(uniq[i], vals[i]);
  if (!numeric) return uniq;
  // One class per value, named by its shortest spelling: "1", "1.0" and "+1" are one class.
  std::sort(vals.begin(), vals.end());
  vals.erase(std::unique(vals.begin(), vals.end()), vals.end());
  std::vector<std::string> out;
  for (double v : vals) out.push_back(format_number(v));
  return out;
}

int class_index(const std::vector<std::string>& classes, const std::string& label) {
  for (size_t k = 0; k < classes.size(); ++k)
    if (classes[k] == label) return static_cast<int>(k);
  double v, w;
  if (finite_number(label, v))
    for (size_t k = 0; k < classes.size(); ++k)
      if (finite_number(classes[k], w) && w == v) return static_cast<int>(k);
  return -1;
}

Dataset load_dataset(const LoadParams& p, const std::vector<std::string>* classes) {
  return load_dataset(p, read_features(p.features_path), classes);
}

Dataset load_dataset(const LoadParams& p, const Features& f, const std::vector<std::string>* classes) {
  auto t = read_csv(p.labels_path);
  const size_t ic = t.col(p.id_col), lc = t.col(p.label_col);
  const size_t sc = p.split_col.empty() ? 0 : t.col(p.split_col);
  std::unordered_map<std::string, int64_t> pos;
  for (size_t i = 0; i < f.ids.size(); ++i) pos.emplace(f.ids[i], int64_t(i));

  Dataset d;
  d.features_path = p.features_path;
  d.labels_path = p.labels_path;
  d.label_col = p.label_col;
  d.features_kind = f.kind;
  std::vector<int64_t> rows;
  std::vector<std::string> labels, missing;
  std::unordered_map<std::string, size_t> seen;  // id -> data row, so a duplicated id is refused
  size_t dropped = 0;
  for (size_t r = 0; r < t.rows.size(); ++r) {
    if (auto [at, fresh] = seen.emplace(t.rows[r][ic], r); !fresh)
      throw_input("{}: id '{}' in column '{}' is listed twice (data rows {} and {}), expected one row per id",
                  p.labels_path, t.rows[r][ic], p.id_col, at->second + 1, r + 1);
    std::string lab = trim_copy(t.rows[r][lc]);
    if (lab.empty()) {
      if (!p.drop_missing)
        throw_input("{}: empty value in column '{}' at data row {} (id '{}')", p.labels_path, p.label_col, r + 1,
                    t.rows[r][ic]);
      ++dropped;
      continue;
    }
    auto it = pos.find(t.rows[r][ic]);
    if (it == pos.end()) {
      missing.push_back(t.rows[r][ic]);
      continue;
    }
    rows.push_back(it->second);
    labels.push_back(lab);
    d.ids.push_back(t.rows[r][ic]);
    if (!p.split_col.empty()) d.split.push_back(trim_copy(t.rows[r][sc]));
  }
  if (!missing.empty())
    throw_input("{}: {} id(s) in column '{}' are missing from {} (first: {})", p.labels_path, missing.size(), p.id_col,
                p.features_path, first_few(missing));
  if (dropped) spdlog::info("{}: dropped {} row(s) with an empty '{}'", p.labels_path, dropped, p.label_col);
  if (rows.empty()) throw_input("{}: no labelled rows in column '{}'", p.labels_path, p.label_col);
  if (rows.size() < f.ids.size())
    spdlog::debug("{}: {} of {} feature rows have labels", p.features_path, rows.size(), f.ids.size());

  if (classes) {
    d.classes = *classes;
  } else {
    d.classes = derive_classes(labels);
    if (d.classes.size() < 2)
      throw_input("{}: column '{}' has a single class '{}' in {} labelled row(s); need at least 2 classes",
                  p.labels_path, p.label_col, d.classes[0], labels.size());
  }
  std::unordered_map<std::string, int> idx;  // label spelling -> class, resolved once per spelling
  for (auto& l : labels) {
    auto it = idx.find(l);
    if (it == idx.end()) it = idx.emplace(l, class_index(d.classes, l)).first;
    if (it->second < 0)
      throw_input("{}: label '{}' in column '{}' is not a class of the model (classes: {})", p.labels_path, l,
                  p.label_col, first_few(d.classes, 20));
    d.y.push_back(it->second);
  }
  d.X = f.X.take_rows(rows);
  return d;
}

std::vector<int64_t> rows_for_id_file(const Dataset& d, const std::string& path) {
  std::ifstream in(path);
  if (!in) throw_input("{}: cannot open id list", path);
  std::unordered_map<std::string, int64_t> pos;
  for (size_t i = 0; i < d.ids.size(); ++i) pos.emplace(d.ids[i], int64_t(i));
  std::vector<int64_t> rows;
  std::vector<std::string> missing;
  std::string line;
  while (std::getline(in, line)) {
    line = trim_copy(line);
    if (line.empty()) continue;
    auto it = pos.find(line);
    if (it == pos.end()) missing.push_back(line);
    else rows.push_back(it->second);
  }
  if (!missing.empty())
    throw_input("{}: {} id(s) are not labelled rows of {} + {} (first: {})", path, missing.size(), d.features_path,
                d.labels_path, first_few(missing));
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  if (rows.empty()) throw_input("{}: no ids", path);
  return rows;
}

void check_disjoint(const std::vector<int64_t>& a, const std::vector<int64_t>& b, const Dataset& d,
                    const std::string& a_path, const std::string& b_path) {
  std::vector<int64_t> both;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
  if (both.empty()) return;
  std::vector<std::string> ids;
  for (size_t i = 0; i < std::min<size_t>(both.size(), 5); ++i) ids.push_back(d.ids[static_cast<size_t>(both[i])]);
  throw_input("{} and {}: {} id(s) are in both lists (first: {}); train and test rows must be disjoint", a_path,
              b_path, both.size(), first_few(ids));
}

}  // namespace cl::cbm
