// Latent rankings per concept (annotation, direction, name, weight).
#include "explain/rules.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "explain/contrib.h"
#include "explain/naming.h"

namespace cl::explain {

std::vector<int64_t> latents_by_annotation(const CsrMatrix& acts, const ConceptLabels& labels) {
  const auto auc = latent_aurocs(to_csc(acts), {labels})[0];
  std::vector<int64_t> r;
  for (int64_t j = 0; j < static_cast<int64_t>(auc.size()); ++j)
    if (!std::isnan(auc[static_cast<size_t>(j)])) r.push_back(j);
  std::stable_sort(r.begin(), r.end(), [&](int64_t a, int64_t b) { return auc[a] > auc[b]; });
  return r;
}

std::vector<int64_t> latents_by_direction(const SaeWeights& w, const std::vector<float>& vec) {
  if (static_cast<int64_t>(vec.size()) != w.d_in)
    throw_input("concept vector of dim {}, the SAE has dim {}", vec.size(), w.d_in);
  const auto r = name_by_direction(w.W_dec, w.n_latents, w.d_in, {"concept"}, vec, {}, {}, {},
                                   NameParams{-1.0, static_cast<int>(w.n_latents)});
  std::vector<int64_t> out;
  for (auto [j, c] : r.matches[0].nearest) out.push_back(j);
  return out;
}

std::vector<int64_t> latents_named(const LatentNames& names, const std::string& concept_name,
                                   const cbm::LogRegFit& model) {
  auto out = names.latents_named(concept_name);
  const auto rank = importance_ranks(model);
  auto key = [&](int64_t j) {
    return j < static_cast<int64_t>(rank.size()) && rank[static_cast<size_t>(j)] > 0 ? rank[static_cast<size_t>(j)]
                                                                                      : std::numeric_limits<int64_t>::max();
  };
  std::stable_sort(out.begin(), out.end(), [&](int64_t a, int64_t b) { return key(a) < key(b); });
  return out;
}

std::vector<int64_t> latents_by_weight(const cbm::LogRegFit& model) {
  const auto rank = importance_ranks(model);
  std::vector<int64_t> used;
  for (int64_t j = 0; j < model.n_features; ++j)
    if (rank[static_cast<size_t>(j)] > 0) used.push_back(j);
  std::stable_sort(used.begin(), used.end(), [&](int64_t a, int64_t b) { return rank[a] < rank[b]; });
  return used;
}

}  // namespace cl::explain
