// Naming latents from annotations (`explain match`): for every 0/1 annotated concept, the AUROC
// and average precision of every latent's activation, computed for all latents in one pass over
// the column view; per concept the best latents with their margin to the runner-up; per latent
// its best concept; and, because a broad concept is often spread over several latents, per
// concept the smallest set of latents (up to max_latents, from the L1 path of a logistic model
// on the activations) with its held-out AUROC next to a linear probe on the embeddings.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/progress.h"
#include "core/sparse.h"
#include "explain/concepts.h"

namespace cl::explain {

struct MatchParams {
  int top = 5;                // best latents listed per concept
  int max_latents = 5;        // K: the largest latent set per concept
  double named_auroc = 0.8;   // a latent counts as named when its best concept AUROC reaches this
  int min_positives = 10;     // concepts with fewer annotated positives name no latent (AUROC too noisy)
  double probe_margin = 0.05;  // coverage: sets within this AUROC of the probe
  int splits = 5;             // stratified splits for the set and probe AUROCs (held out)
  double test_size = 0.2;
  uint64_t seed = 0;
  int path_alphas = 24;       // L1 path: log-spaced alphas from the all-zero alpha down 1000x
  int threads = 0;            // 0 = all cores
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MatchParams, top, max_latents, named_auroc, min_positives, probe_margin, splits,
                                                test_size, seed, path_alphas, threads)
void validate(const MatchParams& p);

struct LatentScore {
  int64_t latent = -1;
  double auroc = 0, ap = 0;
};

struct ConceptSummary {
  std::string name;
  int64_t n_pos = 0, n_neg = 0;       // annotated images
  std::vector<LatentScore> best;      // by AUROC, rank = position + 1
  double margin = 0;                  // best AUROC minus the runner-up's
  std::vector<int64_t> latent_set;    // up to K latents, from the L1 path on all annotated rows
  double set_auroc = std::numeric_limits<double>::quiet_NaN();    // held out, mean over splits
  double set_auroc_std = std::numeric_limits<double>::quiet_NaN();
  double set_size_mean = std::numeric_limits<double>::quiet_NaN();  // latents used per split
  double probe_auroc = std::numeric_limits<double>::quiet_NaN();  // L2 probe on embeddings, same splits
  double probe_auroc_std = std::numeric_limits<double>::quiet_NaN();
  std::string note;                   // why a held-out figure is missing (e.g. too few positives)
};

struct LatentBest {
  int64_t latent = -1;
  int64_t concept_index = -1;  // into MatchReport::concepts (those with at least min_positives)
  double auroc = 0;
  bool named = false;          // auroc >= named_auroc
};

struct Coverage {
  int64_t n_latents = 0, alive = 0, named = 0;
  int64_t concepts = 0, single_above_08 = 0, single_above_09 = 0, sets_near_probe = 0, with_probe = 0;
};

struct MatchReport {
  std::vector<ConceptSummary> concepts;
  std::vector<LatentBest> per_latent;  // every latent that fires at least once
  Coverage coverage;
  std::vector<std::vector<double>> auroc, ap;  // [concept][latent]
};

// acts_nl [n, L]; labels per concept (1/0/-1 missing) over the same rows; embeddings_nd (may be
// null) [n, D] dense for the probe column.
MatchReport match_concepts(const CsrMatrix& acts_nl, const std::vector<std::string>& names,
                           const std::vector<ConceptLabels>& labels, const CsrMatrix* embeddings_nd,
                           const MatchParams& p, ProgressSink& progress = silent_progress());

nlohmann::json to_json(const MatchReport& r);

// The held-out figures of one concept on one split (what match_concepts averages over its splits,
// and what `sae sweep` scores on its held-out rows). y [n_rows] holds 0/1 for the rows listed.
// The K-latent set: the L1 path fitted on train_rows of acts_nl (at most p.max_latents latents),
// scored on test_rows; 0.5 (chance) when no latent enters the path. latents_out gets the set.
// acts_by_latent is to_csc(acts_nl), made once by the caller for all its concepts and splits.
double heldout_set_auroc(const CsrMatrix& acts_nl, const CscMatrix& acts_by_latent, const std::vector<int>& y,
                         const std::vector<int64_t>& train_rows,
                         const std::vector<int64_t>& test_rows, const MatchParams& p,
                         std::vector<int64_t>* latents_out = nullptr);
// The linear probe: an L2 logistic model on embeddings_nd fitted on train_rows, scored on test_rows.
double heldout_probe_auroc(const CsrMatrix& embeddings_nd, const std::vector<int>& y,
                           const std::vector<int64_t>& train_rows, const std::vector<int64_t>& test_rows);

}  // namespace cl::explain
