// `conceptlab demo` as a library call: generate the demo world, embed it with the demo encoder
// and check that the embeddings carry every concept (ridge probe AUROC on the test split).
// Later pipeline stages (SAE, CBM, explanations) are chained after this by the CLI.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "core/embeddings.h"
#include "tools/demo/world.h"
#include "tools/embed/embed.h"

namespace cl::demo {

struct DemoParams {
  std::string out_dir = "demo-out";
  int64_t n = 4000;
  uint64_t seed = 0;
  int batch = 64;
  std::string device = "auto";
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DemoParams, out_dir, n, seed, batch, device)

struct QuickCheck {
  std::map<std::string, double> concept_auroc;  // ridge probe, fit on train rows, scored on test rows
  double hair_malignant_corr_train = 0, hair_malignant_corr_test = 0;  // phi coefficients
  int64_t n_train = 0, n_test = 0;
};
nlohmann::json to_json(const QuickCheck& q);

// Probe check on embeddings that carry the demo columns (split, malignant, concept flags).
QuickCheck quick_check(const Embeddings& e);

struct DemoReport {
  DemoWorldReport world;
  embed::EmbedReport embed;
  QuickCheck check;
  std::string embeddings_path;
};
nlohmann::json to_json(const DemoReport& r);

DemoReport run_demo(const DemoParams& p, torch::Device device, bool quiet = false);

}  // namespace cl::demo
