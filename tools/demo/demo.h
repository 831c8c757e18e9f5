// `conceptlab demo` as a library call: generate a demo world (images with planted concepts, a
// hair~malignancy bias in the train split only, and a demo encoder whose embeddings carry each
// concept as a sparse, strong direction), then `conceptlab run` on it (tools/pipeline) with the
// demo's settings, and read the story off the workspace: which latent the SAE found for each
// planted concept, the concept bottleneck against a probe, the classifier fitted on the biased
// split against one fitted without the bias, and what zeroing the hair latents recovers next to
// a random control.
#pragma once

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/device.h"
#include "core/embeddings.h"
#include "core/progress.h"
#include "tools/demo/world.h"
#include "tools/pipeline/pipeline.h"

namespace cl::demo {

// The demo's pipeline settings (data columns, a BatchTopK SAE sized for a few thousand images,
// the hair intervention, curves). The world's files are filled in by run_demo.
pipeline::PipelineParams demo_pipeline_params();

struct DemoParams {
  std::string out_dir = "demo-out";  // the world and the pipeline's workspace
  std::string device = "auto";
  DemoWorldParams world;
  pipeline::PipelineParams pipeline = demo_pipeline_params();
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DemoParams, out_dir, device, world, pipeline)

struct QuickCheck {
  std::map<std::string, double> concept_auroc;  // ridge probe, fit on train rows, scored on test rows
  double hair_malignant_corr_train = 0, hair_malignant_corr_test = 0;  // phi coefficients
  int64_t n_train = 0, n_test = 0;
};
nlohmann::json to_json(const QuickCheck& q);

// Probe check on embeddings that carry the demo columns (split, malignant, concept flags).
QuickCheck quick_check(const Embeddings& e);

struct ConceptFound {
  std::string concept_name;
  int64_t latent = -1;
  double auroc = 0;
  // Where the latent fires against the world's masks (explain/localize.h; NaN without patches).
  double pointing = std::nan(""), control_pointing = std::nan(""), patch_auroc = std::nan("");
};

struct DemoReport {
  DemoWorldReport world;
  std::string workspace, report_md;
  std::vector<pipeline::StepResult> steps;
  double sae_fvu = 0, sae_l0 = 0, sae_dead = 0;
  int64_t n_latents = 0;
  std::vector<ConceptFound> concepts;  // concept_names() order
  double cbm_auroc = 0, probe_auroc = 0;      // fitted on the biased train split, unbiased test split
  double unbiased_auroc = 0;                  // the bottleneck fitted without the hair bias
  std::vector<int64_t> hair_latents;          // zeroed
  // NaN when no latent is named hair (JSON null).
  double hair_zeroed_auroc = std::nan("");     // the biased bottleneck with them zeroed
  double control_mean = std::nan(""), control_lo = std::nan(""), control_hi = std::nan("");  // random latents instead (95%)
  double recovered = std::nan("");  // (zeroed - biased) / (unbiased - biased)
  nlohmann::json report;  // the pipeline's report.json
};
nlohmann::json to_json(const DemoReport& r);

DemoReport run_demo(const DemoParams& p, Device device, ProgressSink& progress = silent_progress());

}  // namespace cl::demo
