// Naming latents by direction (`explain name`): the cosine between each latent's unit decoder
// row and each concept vector (text embeddings from a vocabulary, or concept activation vectors:
// the direction of an L2 probe for an annotated column in embedding space), and a one-to-one
// assignment of concepts to latents by the Hungarian algorithm, with "unassigned" below a
// similarity threshold, optionally among the latents a concept bottleneck uses (as the reference
// matches text concepts to the decoder atoms of latents with non-zero mean classifier weight).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/sparse.h"
#include "explain/concepts.h"

namespace cl::explain {

struct NameParams {
  double min_similarity = 0.1;  // an assignment below this cosine is reported as unassigned
  int nearest = 3;              // nearest latents listed per concept (by cosine, before assignment)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(NameParams, min_similarity, nearest)
void validate(const NameParams& p);

struct DirectionMatch {
  std::string concept_name;
  int64_t latent = -1;           // -1: unassigned
  double cosine = 0;             // of the assigned latent (or of the best one when unassigned)
  int64_t importance_rank = 0;   // in the CBM when one is given (0: not used by it / no CBM)
  std::vector<std::pair<int64_t, double>> nearest;  // (latent, cosine), best first
  int64_t annotation_latent = -1;  // the annotation-best latent when known
  bool agrees = false;             // the direction-named latent is the annotation-best latent
};

struct NameReport {
  int64_t n_candidates = 0;  // latents taking part in the assignment
  std::vector<DirectionMatch> matches;  // one per concept, in the given order
};

// W_dec [L, D] (rows need not be unit norm); concept vectors [C, D]; candidates: latents allowed
// (empty = all); importance (may be empty) = explain::importance_ranks of a CBM;
// annotation_best (may be empty) = the best latent per concept from explain match.
NameReport name_by_direction(const std::vector<float>& W_dec, int64_t L, int64_t D,
                             const std::vector<std::string>& concepts, const std::vector<float>& vectors_cd,
                             const std::vector<int64_t>& candidates, const std::vector<int64_t>& importance,
                             const std::vector<int64_t>& annotation_best, const NameParams& p);

// Concept activation vectors: per concept the weight direction of an L2 logistic probe on the
// annotated rows of the embeddings (dense, as CSR) [C, D], in embedding units.
std::vector<float> concept_vectors(const CsrMatrix& embeddings_nd, const std::vector<ConceptLabels>& labels);

nlohmann::json to_json(const NameReport& r);

}  // namespace cl::explain
