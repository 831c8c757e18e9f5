// Rankings of latents for a concept, shared by `intervene --by`, `explain curve --by` and the
// pipeline's configured interventions: by annotation AUROC, by decoder direction, by name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cbm/logreg.h"
#include "core/latent_names.h"
#include "core/sae_weights.h"
#include "core/sparse.h"
#include "explain/concepts.h"

namespace cl::explain {

// Latents by their AUROC against the concept's labels, best first (latents without a defined
// AUROC left out).
std::vector<int64_t> latents_by_annotation(const CsrMatrix& acts_nl, const ConceptLabels& labels);

// Latents by the cosine of their decoder row with the concept vector (dim = w.d_in), best first.
std::vector<int64_t> latents_by_direction(const SaeWeights& w, const std::vector<float>& concept_vector);

// Latents named after the concept (case-insensitive), by the model's importance rank (latents the
// model does not use last).
std::vector<int64_t> latents_named(const LatentNames& names, const std::string& concept_name,
                                   const cbm::LogRegFit& model);

// Latents the model uses, by importance rank.
std::vector<int64_t> latents_by_weight(const cbm::LogRegFit& model);

}  // namespace cl::explain
