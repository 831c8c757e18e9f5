// Global and local explanations of linear models over latent activations.
#include "explain/contrib.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace cl::explain {

double class_weight(const cbm::LogRegFit& m, int k, int64_t j) {
  if (m.n_rows == 1) return (k == 1 ? 1.0 : -1.0) * m.weights[static_cast<size_t>(j)];
  return m.weights[static_cast<size_t>(k * m.n_features + j)];
}

std::vector<int64_t> importance_ranks(const cbm::LogRegFit& m) {
  std::vector<double> mag(static_cast<size_t>(m.n_features), 0.0);
  for (int64_t k = 0; k < m.n_rows; ++k)
    for (int64_t j = 0; j < m.n_features; ++j)
      mag[static_cast<size_t>(j)] = std::max(mag[static_cast<size_t>(j)], std::abs(m.weights[static_cast<size_t>(k * m.n_features + j)]));
  std::vector<int64_t> order;
  for (int64_t j = 0; j < m.n_features; ++j)
    if (mag[static_cast<size_t>(j)] > 0) order.push_back(j);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return mag[a] > mag[b]; });
  std::vector<int64_t> rank(static_cast<size_t>(m.n_features), 0);
  for (size_t r = 0; r < order.size(); ++r) rank[static_cast<size_t>(order[r])] = static_cast<int64_t>(r) + 1;
  return rank;
}

std::vector<ClassGlobal> global_explanations(const cbm::LogRegFit& m, const std::vector<std::string>& classes,
                                             const CsrMatrix& acts, const std::vector<int>& y, int top) {
  CL_ASSERT(acts.n_cols == m.n_features, "activations and model differ in features");
  CL_ASSERT(static_cast<int>(classes.size()) == m.n_classes, "one name per class");
  CL_ASSERT(y.empty() || static_cast<int64_t>(y.size()) == acts.n_rows, "one label per row");
  const int C = m.n_classes;
  const int64_t F = m.n_features;
  // Mean activation of every latent over each class's images (or over all images).
  std::vector<double> sum(static_cast<size_t>((y.empty() ? 1 : C) * F), 0.0);
  std::vector<int64_t> count(static_cast<size_t>(y.empty() ? 1 : C), 0);
  for (int64_t i = 0; i < acts.n_rows; ++i) {
    const int g = y.empty() ? 0 : y[static_cast<size_t>(i)];
    ++count[static_cast<size_t>(g)];
    for (const auto [j, v] : acts.row(i)) sum[static_cast<size_t>(g * F + j)] += v;
  }
  const auto rank = importance_ranks(m);
  std::vector<ClassGlobal> out;
  for (int k = 0; k < C; ++k) {
    const int g = y.empty() ? 0 : k;
    ClassGlobal cg;
    cg.class_name = classes[static_cast<size_t>(k)];
    cg.n_images = count[static_cast<size_t>(g)];
    std::vector<LatentTerm> terms;
    for (int64_t j = 0; j < F; ++j) {
      const double w = class_weight(m, k, j);
      if (w == 0) continue;
      const double mean = cg.n_images > 0 ? sum[static_cast<size_t>(g * F + j)] / static_cast<double>(cg.n_images) : 0.0;
      terms.push_back({j, w, mean, w * mean, rank[static_cast<size_t>(j)]});
    }
    auto keep = [&](auto cmp) {
      std::vector<LatentTerm> t = terms;
      std::stable_sort(t.begin(), t.end(), cmp);
      if (static_cast<int>(t.size()) > top) t.resize(static_cast<size_t>(std::max(top, 0)));
      return t;
    };
    cg.by_weight = keep([](const LatentTerm& a, const LatentTerm& b) { return a.weight > b.weight; });
    cg.by_contribution = keep([](const LatentTerm& a, const LatentTerm& b) {
      return std::abs(a.mean_contribution) > std::abs(b.mean_contribution);
    });
    out.push_back(std::move(cg));
  }
  return out;
}

std::vector<ClassLocal> local_explanation(const cbm::LogRegFit& m, const std::vector<std::string>& classes,
                                          const CsrMatrix& acts, int64_t row) {
  CL_ASSERT(acts.n_cols == m.n_features, "activations and model differ in features");
  if (row < 0 || row >= acts.n_rows) throw_input("image row {}: expected 0..{}", row, acts.n_rows - 1);
  const auto rank = importance_ranks(m);
  const auto logits = cbm::decision_function(acts, m, {row});
  const auto proba = cbm::proba_from_logits(logits, m.n_rows, m.n_classes);
  std::vector<ClassLocal> out;
  for (int k = 0; k < m.n_classes; ++k) {
    ClassLocal cl;
    cl.class_name = classes[static_cast<size_t>(k)];
    cl.probability = proba[static_cast<size_t>(k)];
    const double sign = m.n_rows == 1 && k == 0 ? -1.0 : 1.0;
    const int64_t r = m.n_rows == 1 ? 0 : k;
    cl.logit = sign * logits[static_cast<size_t>(r)];
    cl.bias = sign * m.bias[static_cast<size_t>(r)];
    for (const auto [j, a] : acts.row(row)) {
      const double w = class_weight(m, k, j);
      if (w != 0) cl.terms.push_back({j, w, a, w * a, rank[static_cast<size_t>(j)]});
    }
    std::stable_sort(cl.terms.begin(), cl.terms.end(), [](const LatentTerm& a, const LatentTerm& b) {
      return std::abs(a.mean_contribution) > std::abs(b.mean_contribution);
    });
    out.push_back(std::move(cl));
  }
  return out;
}

namespace {
nlohmann::json terms_json(const std::vector<LatentTerm>& t, bool local) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& x : t)
    a.push_back({{"latent", x.latent},
                 {"weight", x.weight},
                 {local ? "activation" : "mean_activation", x.mean_activation},
                 {local ? "contribution" : "mean_contribution", x.mean_contribution},
                 {"importance_rank", x.importance_rank}});
  return a;
}
}  // namespace

nlohmann::json to_json(const std::vector<ClassGlobal>& g) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : g)
    out.push_back({{"class", c.class_name},
                   {"n_images", c.n_images},
                   {"by_weight", terms_json(c.by_weight, false)},
                   {"by_contribution", terms_json(c.by_contribution, false)}});
  return out;
}

nlohmann::json to_json(const std::vector<ClassLocal>& l) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : l)
    out.push_back({{"class", c.class_name},
                   {"probability", c.probability},
                   {"logit", c.logit},
                   {"bias", c.bias},
                   {"contributions", terms_json(c.terms, true)}});
  return out;
}

}  // namespace cl::explain
