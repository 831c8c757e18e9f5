// Naming latents from annotations: how well each latent's activation alone detects each 0/1
// annotated concept (AUROC), and the best latents per concept. Computed over the per-latent
// (column-major) view of the activations, so a latent costs its non-zeros, not n_images.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/sparse.h"

namespace cl::explain {

// Concept labels per image: 1 present, 0 absent, -1 not annotated (left out of that concept).
using ConceptLabels = std::vector<int8_t>;

// From a numeric column: 1 for values > 0.5, 0 for values <= 0.5, -1 for NaN (missing).
ConceptLabels labels_from_column(const std::vector<double>& values);

// AUROC of every latent against every concept: [concepts.size()][n_latents], NaN where a concept
// has no positive or no negative among its annotated images. acts_by_latent is to_csc(acts_nl);
// each latent's zeros form one tie block. Equal to cbm::auroc on the densified column.
std::vector<std::vector<double>> latent_aurocs(const CscMatrix& acts_by_latent,
                                               const std::vector<ConceptLabels>& concepts, int threads = 0);

// The same walk for either metric: AUROC, or average precision (each latent's zeros one tie block
// at the bottom of the ranking, as cbm::average_precision on the densified column).
enum class LatentMetric { auroc, average_precision };
std::vector<std::vector<double>> latent_scores(const CscMatrix& acts_by_latent, const std::vector<ConceptLabels>& concepts,
                                               LatentMetric metric, int threads = 0);

struct ConceptMatch {
  std::string concept_name;
  int64_t latent = -1;  // -1 when no latent has a defined AUROC
  double auroc = 0;
  double runner_up = 0;  // the second-best latent's AUROC (margin = auroc - runner_up)
};

// The best latent per concept (ties: the lower latent index).
std::vector<ConceptMatch> best_latents(const std::vector<std::vector<double>>& aurocs,
                                       const std::vector<std::string>& concept_names);

// Latents whose AUROC for one concept is at least `threshold`, best first.
std::vector<int64_t> latents_above(const std::vector<double>& aurocs_of_concept, double threshold);

}  // namespace cl::explain
