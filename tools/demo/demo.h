// `conceptlab demo` as a library call: generate the demo world, embed it with the demo encoder,
// check that the embeddings carry every concept, train an SAE and encode the world with it, match
// each concept flag to its best latent, and fit a concept bottleneck (L1 logistic regression on
// the latents) next to a probe on the raw embeddings, both on the hair-biased train split and
// scored on the unbiased test split, with the hair latents zeroed as a first intervention.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "core/embeddings.h"
#include "core/sparse.h"
#include "tools/demo/world.h"
#include "tools/embed/embed.h"

namespace cl::demo {

struct DemoParams {
  std::string out_dir = "demo-out";
  int64_t n = 4000;
  uint64_t seed = 0;
  int batch = 64;
  std::string device = "auto";
  // SAE stage. A few thousand rows make one reference-size batch (4096) per epoch, so the demo
  // trains a top-k SAE with small batches; configs/sae-*.json hold the full-size recipes.
  std::string sae_arch = "topk";
  int64_t sae_expansion = 4;
  int64_t sae_k = 16;
  int64_t sae_batch = 256;
  int64_t sae_epochs = 30;
  double sae_lr = 1e-3;
  // CBM stage: L1 logistic regression on the latents (and the same on embeddings as the probe).
  double cbm_alpha = 1e-3;
  // Latents whose activation alone detects hair with at least this AUROC are zeroed.
  double hair_latent_auroc = 0.8;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DemoParams, out_dir, n, seed, batch, device, sae_arch, sae_expansion,
                                                sae_k, sae_batch, sae_epochs, sae_lr, cbm_alpha, hair_latent_auroc)

struct QuickCheck {
  std::map<std::string, double> concept_auroc;  // ridge probe, fit on train rows, scored on test rows
  double hair_malignant_corr_train = 0, hair_malignant_corr_test = 0;  // phi coefficients
  int64_t n_train = 0, n_test = 0;
};
nlohmann::json to_json(const QuickCheck& q);

// Probe check on embeddings that carry the demo columns (split, malignant, concept flags).
QuickCheck quick_check(const Embeddings& e);

// The latent whose activation alone best detects a concept flag (AUROC over all images).
struct ConceptMatch {
  std::string concept_name;
  int64_t latent = -1;
  double auroc = 0;
};

// AUROC of every latent's activation (zero where the CSR row has no entry) against each 0/1
// flag; returns [flags.size()][n_latents]. O(nnz log nnz) per flag: zeros form one tie block.
std::vector<std::vector<double>> latent_aurocs(const CsrMatrix& acts_nl, const std::vector<std::vector<int>>& flags);

struct ClassifierStage {
  double test_auroc = 0, test_balanced_accuracy = 0;
  int64_t nnz = 0;  // non-zero weights
  nlohmann::json report;
};

struct DemoReport {
  DemoWorldReport world;
  embed::EmbedReport embed;
  QuickCheck check;
  std::string embeddings_path, sae_path, activations_path, report_path;
  nlohmann::json sae_metrics;
  double sae_seconds = 0;
  std::vector<ConceptMatch> matches;  // concept_names() order
  ClassifierStage cbm, probe;         // malignant: fit on train, scored on test
  std::vector<int64_t> hair_latents;  // latents zeroed by the intervention
  double hair_weight_share = 0;       // share of the CBM's |weights| on those latents
  double cbm_test_auroc_hair_zeroed = 0;
};
nlohmann::json to_json(const DemoReport& r);

DemoReport run_demo(const DemoParams& p, torch::Device device, bool quiet = false);

}  // namespace cl::demo
