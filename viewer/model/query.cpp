// Query by example (see query.h): embed -> SAE encode -> nearest images and CBM probabilities.
#include "viewer/model/query.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "cbm/logreg.h"
#include "core/error.h"
#include "sae/sae.h"
#include "tools/embed/embed.h"
#include "tools/embed/encoder.h"

namespace cl::viewer {

QueryResult query_by_example(const WorkspaceModel& m, const std::string& image_path, Device device, ProgressSink& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  Progress prog(progress, "query by example", 3, "steps");
  if (m.paths.encoder_model.empty())
    throw_input("{}: the workspace names no encoder (embed.model); query by example needs it",
                m.paths.dir.empty() ? std::string("workspace") : m.paths.dir + "/workspace.json");
  if (!std::filesystem::exists(m.paths.sae)) throw_input("{}: no SAE file; query by example needs it", m.paths.sae);
  embed::EmbedParams ep;
  ep.model = m.paths.encoder_model;
  ep.preprocess_json = m.paths.preprocess_json;
  embed::Encoder enc(ep.model, embed::resolve_preprocess(ep), device);
  prog.add(1);
  const std::vector<float> x = enc.embed_file(image_path);
  prog.add(1);
  const sae::Model sm = sae::Model::load(m.paths.sae, device);
  sm.check_dim(static_cast<int64_t>(x.size()), image_path);
  const CsrMatrix code = sm.encode(x.data(), 1);
  QueryResult r;
  r.image_path = image_path;
  for (const auto [j, v] : code.row(0)) r.latents.emplace_back(j, v);
  std::stable_sort(r.latents.begin(), r.latents.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  r.nearest = nearest_images(m, r.latents, 16);
  if (m.has_cbm() && code.n_cols == m.cbm.n_features) r.proba = cbm::predict_proba(code, m.cbm);
  prog.add(1);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace cl::viewer
