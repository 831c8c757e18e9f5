// `conceptlab demo` as a library call: generate the demo world, embed it with the demo encoder,
// check that the embeddings carry every concept, train an SAE and encode the world with it, match
// each concept flag to its best latent (cl::explain), and fit a concept bottleneck (L1 logistic
// regression on the latents) next to a probe on the raw embeddings, both on the hair-biased train
// split and scored on the unbiased test split, with the hair latents zeroed as a first
// intervention (cl::explain).
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "cbm/logreg.h"
#include "cbm/protocol.h"
#include "core/device.h"
#include "core/embeddings.h"
#include "core/progress.h"
#include "explain/concepts.h"
#include "sae/sae.h"
#include "tools/demo/world.h"
#include "tools/embed/embed.h"

namespace cl::demo {

// The demo's SAE: a few thousand rows make one reference-size batch (4096) per epoch, so the demo
// trains a top-k SAE with small batches; configs/sae-*.json hold the full-size recipes.
sae::TrainParams demo_sae_params();

struct DemoParams {
  std::string out_dir = "demo-out";
  std::string device = "auto";
  int batch = 64;  // images per encoder call
  DemoWorldParams world;
  sae::TrainParams sae = demo_sae_params();
  cbm::LogRegParams cbm;  // the concept bottleneck (L1 on latents) and the probe (L1 on embeddings)
  // Latents whose activation alone detects hair with at least this AUROC are zeroed.
  double hair_latent_auroc = 0.8;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DemoParams, out_dir, device, batch, world, sae, cbm, hair_latent_auroc)

struct QuickCheck {
  std::map<std::string, double> concept_auroc;  // ridge probe, fit on train rows, scored on test rows
  double hair_malignant_corr_train = 0, hair_malignant_corr_test = 0;  // phi coefficients
  int64_t n_train = 0, n_test = 0;
};
nlohmann::json to_json(const QuickCheck& q);

// Probe check on embeddings that carry the demo columns (split, malignant, concept flags).
QuickCheck quick_check(const Embeddings& e);

struct ClassifierStage {
  double test_auroc = 0, test_balanced_accuracy = 0;
  int64_t nnz = 0;  // non-zero weights
  cbm::ProtocolReport report;
};

struct DemoReport {
  DemoWorldReport world;
  embed::EmbedReport embed;
  QuickCheck check;
  std::string embeddings_path, sae_path, activations_path, report_path;
  sae::Metrics sae_metrics;
  int64_t n_latents = 0;
  double sae_seconds = 0;
  std::vector<explain::ConceptMatch> matches;  // concept_names() order
  ClassifierStage cbm, probe;  // malignant: fit on train, scored on test
  std::vector<int64_t> hair_latents;  // latents zeroed by the intervention
  double hair_weight_share = 0;       // share of the CBM's |weights| on those latents
  double cbm_test_auroc_hair_zeroed = 0;
};
nlohmann::json to_json(const DemoReport& r);

DemoReport run_demo(const DemoParams& p, Device device, ProgressSink& progress = silent_progress());

}  // namespace cl::demo
