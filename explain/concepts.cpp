// Latent x concept AUROC matrix over the column-major activations: each latent's non-zeros are
// sorted once by value, then swept once per concept with the zeros as one implicit tie block
// (cbm::auroc_sorted, the same Mann-Whitney sweep behind cbm::auroc).
#include "explain/concepts.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "cbm/metrics.h"
#include "core/error.h"
#include "core/parallel.h"

namespace cl::explain {

ConceptLabels labels_from_column(const std::vector<double>& values) {
  ConceptLabels out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = std::isnan(values[i]) ? -1 : values[i] > 0.5 ? 1 : 0;
  return out;
}

std::vector<std::vector<double>> latent_aurocs(const CscMatrix& acts_by_latent,
                                               const std::vector<ConceptLabels>& concepts, int threads) {
  return latent_scores(acts_by_latent, concepts, LatentMetric::auroc, threads);
}

std::vector<std::vector<double>> latent_scores(const CscMatrix& acts_by_latent, const std::vector<ConceptLabels>& concepts,
                                               LatentMetric metric, int threads) {
  const int64_t n = acts_by_latent.rows(), L = acts_by_latent.cols();
  const size_t C = concepts.size();
  std::vector<int64_t> n_pos(C, 0), n_neg(C, 0);
  for (size_t c = 0; c < C; ++c) {
    CL_ASSERT(static_cast<int64_t>(concepts[c].size()) == n, "concept labels and activations differ in rows");
    for (int8_t v : concepts[c]) {
      if (v == 1) ++n_pos[c];
      if (v == 0) ++n_neg[c];
    }
  }
  std::vector<std::vector<double>> out(C, std::vector<double>(static_cast<size_t>(L)));
  const SparseIndex* colptr = acts_by_latent.outerIndexPtr();
  const SparseIndex* rows = acts_by_latent.innerIndexPtr();
  const float* vals = acts_by_latent.valuePtr();
  parallel_for(L, threads, [&](int64_t j) {
    const SparseIndex a = colptr[j], b = colptr[j + 1];
    std::vector<SparseIndex> order(static_cast<size_t>(b - a));
    std::iota(order.begin(), order.end(), a);
    std::sort(order.begin(), order.end(), [&](SparseIndex u, SparseIndex v) { return vals[u] < vals[v]; });
    std::vector<float> s;
    std::vector<int8_t> l;
    for (size_t c = 0; c < C; ++c) {
      s.clear();
      l.clear();
      int64_t pos_nz = 0, neg_nz = 0;
      for (SparseIndex q : order) {
        const int8_t y = concepts[c][static_cast<size_t>(rows[q])];
        if (y < 0) continue;
        s.push_back(vals[q]);
        l.push_back(y);
        (y ? pos_nz : neg_nz) += 1;
      }
      out[c][static_cast<size_t>(j)] =
          metric == LatentMetric::auroc
              ? cbm::auroc_sorted(s.data(), l.data(), s.size(), 0.0, n_pos[c] - pos_nz, n_neg[c] - neg_nz)
              : cbm::average_precision_sorted(s.data(), l.data(), s.size(), 0.0, n_pos[c] - pos_nz, n_neg[c] - neg_nz);
    }
  });
  return out;
}

std::vector<ConceptMatch> best_latents(const std::vector<std::vector<double>>& aurocs,
                                       const std::vector<std::string>& concept_names) {
  CL_ASSERT(aurocs.size() == concept_names.size(), "one name per concept");
  std::vector<ConceptMatch> out;
  for (size_t c = 0; c < aurocs.size(); ++c) {
    ConceptMatch m;
    m.concept_name = concept_names[c];
    m.auroc = m.runner_up = std::numeric_limits<double>::quiet_NaN();
    for (size_t j = 0; j < aurocs[c].size(); ++j) {
      const double a = aurocs[c][j];
      if (std::isnan(a)) continue;
      if (m.latent < 0 || a > m.auroc) {
        m.runner_up = m.latent < 0 ? m.runner_up : m.auroc;
        m.latent = static_cast<int64_t>(j);
        m.auroc = a;
      } else if (std::isnan(m.runner_up) || a > m.runner_up) {
        m.runner_up = a;
      }
    }
    out.push_back(m);
  }
  return out;
}

std::vector<int64_t> latents_above(const std::vector<double>& aurocs_of_concept, double threshold) {
  std::vector<int64_t> out;
  for (size_t j = 0; j < aurocs_of_concept.size(); ++j)
    if (aurocs_of_concept[j] >= threshold) out.push_back(static_cast<int64_t>(j));
  std::stable_sort(out.begin(), out.end(),
                   [&](int64_t a, int64_t b) { return aurocs_of_concept[a] > aurocs_of_concept[b]; });
  return out;
}

}  // namespace cl::explain
