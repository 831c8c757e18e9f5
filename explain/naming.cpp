// Direction naming: a cosine matrix between decoder rows and concept vectors, then the
// Hungarian assignment on it.
#include "explain/naming.h"

#include <algorithm>
#include <cmath>

#include <Eigen/Dense>

#include "cbm/logreg.h"
#include "cbm/protocol.h"
#include "core/error.h"
#include "explain/hungarian.h"

namespace cl::explain {

void validate(const NameParams& p) {
  if (!(p.min_similarity >= -1 && p.min_similarity <= 1))
    throw_usage("min_similarity {}: expected a cosine in [-1, 1]", p.min_similarity);
  if (p.nearest < 0) throw_usage("nearest {}: expected >= 0", p.nearest);
}

namespace {
using RowMajorXd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMajorXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows scaled to unit length (zero rows stay zero).
RowMajorXd unit_rows(const RowMajorXd& m) {
  RowMajorXd out = m;
  for (Eigen::Index i = 0; i < out.rows(); ++i)
    if (const double n = out.row(i).norm(); n > 0) out.row(i) /= n;
  return out;
}
}  // namespace

NameReport name_by_direction(const std::vector<float>& W_dec, int64_t L, int64_t D,
                             const std::vector<std::string>& concepts, const std::vector<float>& vectors,
                             const std::vector<int64_t>& candidates_in, const std::vector<int64_t>& importance,
                             const std::vector<int64_t>& annotation_best, const NameParams& p) {
  validate(p);
  const int64_t C = static_cast<int64_t>(concepts.size());
  CL_ASSERT(static_cast<int64_t>(W_dec.size()) == L * D && static_cast<int64_t>(vectors.size()) == C * D, "shapes");
  std::vector<int64_t> cand = candidates_in;
  if (cand.empty())
    for (int64_t j = 0; j < L; ++j) cand.push_back(j);
  for (int64_t j : cand)
    if (j < 0 || j >= L) throw_usage("candidate latent {}: expected 0..{}", j, L - 1);
  // cos [C, M] = unit concept vectors x unit decoder rows of the candidates, one matrix product.
  const RowMajorXd v = unit_rows(Eigen::Map<const RowMajorXf>(vectors.data(), C, D).cast<double>());
  RowMajorXd w(static_cast<Eigen::Index>(cand.size()), D);
  const Eigen::Map<const RowMajorXf> all(W_dec.data(), L, D);
  for (size_t m = 0; m < cand.size(); ++m) w.row(static_cast<Eigen::Index>(m)) = all.row(cand[m]).cast<double>();
  const int64_t M = static_cast<int64_t>(cand.size());
  std::vector<double> cos(static_cast<size_t>(C * M));
  Eigen::Map<RowMajorXd>(cos.data(), C, M) = v * unit_rows(w).transpose();
  const auto assigned = assign_max_score(cos, C, M);
  NameReport r;
  r.n_candidates = M;
  for (int64_t c = 0; c < C; ++c) {
    DirectionMatch dm;
    dm.concept_name = concepts[static_cast<size_t>(c)];
    std::vector<int64_t> order(static_cast<size_t>(M));
    for (int64_t m = 0; m < M; ++m) order[static_cast<size_t>(m)] = m;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cos[c * M + a] > cos[c * M + b]; });
    for (int k = 0; k < p.nearest && k < M; ++k)
      dm.nearest.emplace_back(cand[static_cast<size_t>(order[k])], cos[static_cast<size_t>(c * M + order[k])]);
    const int64_t m = assigned[static_cast<size_t>(c)];
    if (m >= 0) {
      dm.cosine = cos[static_cast<size_t>(c * M + m)];
      if (dm.cosine >= p.min_similarity) dm.latent = cand[static_cast<size_t>(m)];
    } else if (M > 0) {
      dm.cosine = cos[static_cast<size_t>(c * M + order[0])];
    }
    if (dm.latent >= 0 && !importance.empty()) dm.importance_rank = importance[static_cast<size_t>(dm.latent)];
    if (static_cast<int64_t>(annotation_best.size()) == C) {
      dm.annotation_latent = annotation_best[static_cast<size_t>(c)];
      dm.agrees = dm.latent >= 0 && dm.latent == dm.annotation_latent;
    }
    r.matches.push_back(std::move(dm));
  }
  return r;
}

std::vector<float> concept_vectors(const CsrMatrix& emb, const std::vector<ConceptLabels>& labels) {
  std::vector<float> out;
  for (const auto& lab : labels) {
    CL_ASSERT(static_cast<int64_t>(lab.size()) == emb.n_rows, "labels and embeddings differ in rows");
    std::vector<int64_t> rows;
    std::vector<int> y(lab.size(), 0);
    for (size_t i = 0; i < lab.size(); ++i)
      if (lab[i] >= 0) rows.push_back(static_cast<int64_t>(i)), y[i] = lab[i];
    cbm::LogRegParams lp;
    lp.penalty = "l2";
    lp.solver = "lbfgs";
    lp.tol = 1e-6;
    lp.alpha = cbm::panderm_alpha(emb.n_cols, 2, static_cast<int64_t>(std::max<size_t>(rows.size(), 1)));
    const auto f = cbm::fit_logreg(emb, y, 2, lp, rows);
    for (int64_t d = 0; d < emb.n_cols; ++d) out.push_back(static_cast<float>(f.weights[static_cast<size_t>(d)]));
  }
  return out;
}

nlohmann::json to_json(const NameReport& r) {
  nlohmann::json m = nlohmann::json::array();
  for (const auto& d : r.matches) {
    nlohmann::json near = nlohmann::json::array();
    for (auto [j, c] : d.nearest) near.push_back({{"latent", j}, {"cosine", c}});
    nlohmann::json x = {{"concept", d.concept_name},
                        {"latent", d.latent >= 0 ? nlohmann::json(d.latent) : nlohmann::json()},
                        {"cosine", d.cosine},
                        {"assigned", d.latent >= 0},
                        {"importance_rank", d.importance_rank},
                        {"nearest", near}};
    if (d.annotation_latent >= 0 || d.agrees) {
      x["annotation_latent"] = d.annotation_latent;
      x["agrees_with_annotation"] = d.agrees;
    }
    m.push_back(x);
  }
  return {{"n_candidates", r.n_candidates}, {"matches", m}};
}

}  // namespace cl::explain
