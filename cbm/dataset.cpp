// Loading features + labels for cbm/probe. Dense embeddings are stored as CSR too (zeros
// dropped) so one solver serves both; at probe sizes (1e3 x 1e3) that costs nothing.
#include "cbm/dataset.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "core/activations.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/h5.h"

namespace cl::cbm {

namespace {

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

bool parse_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  const char* e = s.data() + s.size();
  auto r = std::from_chars(s.data(), e, out);
  return r.ec == std::errc() && r.ptr == e;
}

std::string first_few(const std::vector<std::string>& v, size_t n = 5) {
  std::string s;
  for (size_t i = 0; i < std::min(n, v.size()); ++i) s += (i ? ", " : "") + std::string("'") + v[i] + "'";
  if (v.size() > n) s += ", ...";
  return s;
}

CsrMatrix take(const CsrMatrix& X, const std::vector<int64_t>& rows) {
  CsrMatrix out;
  out.n_rows = static_cast<int64_t>(rows.size());
  out.n_cols = X.n_cols;
  out.indptr.assign(1, 0);
  for (int64_t r : rows) {
    out.indices.insert(out.indices.end(), X.indices.begin() + X.indptr[r], X.indices.begin() + X.indptr[r + 1]);
    out.values.insert(out.values.end(), X.values.begin() + X.indptr[r], X.values.begin() + X.indptr[r + 1]);
    out.indptr.push_back(static_cast<int64_t>(out.indices.size()));
  }
  return out;
}

}  // namespace

Features read_features(const std::string& path) {
  std::string format;
  {
    auto f = h5::open_read(path);
    format = h5::read_attr_string(f.get(), "format").value_or("");
  }
  Features out;
  if (format == "conceptlab.activations") {
    auto a = read_activations(path);
    out.kind = "activations";
    out.ids = std::move(a.ids);
    out.X = std::move(a.acts);
    for (int64_t r = 0; r < out.X.n_rows; ++r)
      for (int64_t q = out.X.indptr[r]; q < out.X.indptr[r + 1]; ++q)
        if (!std::isfinite(out.X.values[q]))
          throw_input("{}: activation {} at row {} (id '{}'), latent {}; expected finite values", path,
                      out.X.values[q], r, out.ids[r], out.X.indices[q]);
  } else if (format == "conceptlab.embeddings") {
    auto e = read_embeddings(path, true);
    out.kind = "embeddings";
    out.ids = std::move(e.ids);
    out.X.n_rows = e.n;
    out.X.n_cols = e.dim;
    out.X.indptr.assign(1, 0);
    out.X.indices.reserve(e.data.size());
    out.X.values.reserve(e.data.size());
    for (int64_t i = 0; i < e.n; ++i) {
      const float* r = e.row(i);
      for (int64_t j = 0; j < e.dim; ++j)
        if (r[j] != 0.0f) out.X.indices.push_back(int32_t(j)), out.X.values.push_back(r[j]);
      out.X.indptr.push_back(int64_t(out.X.indices.size()));
    }
  } else {
    throw_input("{}: format '{}'; expected conceptlab.activations or conceptlab.embeddings", path, format);
  }
  return out;
}

std::vector<std::string> derive_classes(const std::vector<std::string>& labels) {
  std::vector<std::string> uniq(labels.begin(), labels.end());
  std::sort(uniq.begin(), uniq.end());
  uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
  bool numeric = !uniq.empty();
  std::vector<double> vals(uniq.size());
  for (size_t i = 0; i < uniq.size() && numeric; ++i) numeric = parse_number(uniq[i], vals[i]);
  if (numeric) {
    std::vector<size_t> o(uniq.size());
    for (size_t i = 0; i < o.size(); ++i) o[i] = i;
    std::stable_sort(o.begin(), o.end(), [&](size_t a, size_t b) { return vals[a] < vals[b]; });
    std::vector<std::string> s;
    for (size_t i : o) s.push_back(uniq[i]);
    return s;
  }
  return uniq;
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
  size_t dropped = 0;
  for (size_t r = 0; r < t.rows.size(); ++r) {
    std::string lab = trim(t.rows[r][lc]);
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
    if (!p.split_col.empty()) d.split.push_back(trim(t.rows[r][sc]));
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
    std::map<std::string, int> idx;
    for (size_t k = 0; k < d.classes.size(); ++k) idx[d.classes[k]] = int(k);
    for (auto& l : labels) {
      auto it = idx.find(l);
      double v, w;
      if (it == idx.end() && parse_number(l, v))  // "1.0" matches class "1"
        for (size_t k = 0; k < d.classes.size(); ++k)
          if (parse_number(d.classes[k], w) && w == v) it = idx.find(d.classes[k]);
      if (it == idx.end())
        throw_input("{}: label '{}' in column '{}' is not a class of the model (classes: {})", p.labels_path, l,
                    p.label_col, first_few(d.classes, 20));
      d.y.push_back(it->second);
    }
  } else {
    d.classes = derive_classes(labels);
    if (d.classes.size() < 2)
      throw_input("{}: column '{}' has a single class '{}' in {} labelled row(s); need at least 2 classes",
                  p.labels_path, p.label_col, d.classes[0], labels.size());
    std::map<std::string, int> idx;
    for (size_t k = 0; k < d.classes.size(); ++k) idx[d.classes[k]] = int(k);
    for (auto& l : labels) d.y.push_back(idx.at(l));
  }
  d.X = take(f.X, rows);
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
    line = trim(line);
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

}  // namespace cl::cbm
