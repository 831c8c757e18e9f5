// The demo pipeline: world -> embeddings -> probe check -> SAE -> activations -> concept
// matching (explain) -> CBM vs probe on the biased split -> hair latents zeroed (explain).
#include "tools/demo/demo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "cbm/dataset.h"
#include "cbm/logreg.h"
#include "cbm/metrics.h"
#include "cbm/protocol.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/sae_weights.h"
#include "core/sparse.h"
#include "explain/intervention.h"
#include "sae/sae.h"
#include "tools/demo/probe.h"

namespace fs = std::filesystem;

namespace cl::demo {

nlohmann::json to_json(const QuickCheck& q) {
  return {{"concept_auroc", q.concept_auroc},
          {"hair_malignant_corr_train", q.hair_malignant_corr_train},
          {"hair_malignant_corr_test", q.hair_malignant_corr_test},
          {"n_train", q.n_train},
          {"n_test", q.n_test}};
}

sae::TrainParams demo_sae_params() {
  sae::TrainParams p;
  p.arch = "topk";
  p.expansion = 4;
  p.k = 16;
  p.batch = 256;
  p.epochs = 30;
  p.lr = 1e-3;
  p.checkpoint_every = 0;
  return p;
}

nlohmann::json to_json(const DemoReport& r) {
  nlohmann::json matches = nlohmann::json::array();
  for (const auto& m : r.matches) matches.push_back({{"concept", m.concept_name}, {"latent", m.latent}, {"auroc", m.auroc}});
  auto stage = [](const ClassifierStage& c) {
    return nlohmann::json{{"test_auroc", c.test_auroc},
                          {"test_balanced_accuracy", c.test_balanced_accuracy},
                          {"nnz", c.nnz},
                          {"report", cbm::to_json(c.report, {}, false)}};
  };
  nlohmann::json sae_metrics = sae::to_json(r.sae_metrics);
  sae_metrics["n_latents"] = r.n_latents;
  return {{"world", to_json(r.world)},
          {"embed", embed::to_json(r.embed)},
          {"check", to_json(r.check)},
          {"embeddings", r.embeddings_path},
          {"sae", {{"path", r.sae_path}, {"activations", r.activations_path}, {"seconds", r.sae_seconds},
                   {"metrics", sae_metrics}}},
          {"concept_latents", matches},
          {"cbm", stage(r.cbm)},
          {"probe", stage(r.probe)},
          {"intervention",
           {{"hair_latents", r.hair_latents},
            {"hair_weight_share", r.hair_weight_share},
            {"cbm_test_auroc", r.cbm.test_auroc},
            {"cbm_test_auroc_hair_zeroed", r.cbm_test_auroc_hair_zeroed}}}};
}

namespace {

const Column& numeric_column(const Embeddings& e, const std::string& name) {
  const Column* c = find_column(e.columns, name);
  if (!c || !c->numeric) throw_input("embeddings: column '{}' missing or not numeric (expected a demo world file)", name);
  return *c;
}

std::vector<int> int_column(const Embeddings& e, const std::string& name) {
  std::vector<int> v;
  for (double x : numeric_column(e, name).numbers) v.push_back(x > 0.5);
  return v;
}

explain::ConceptLabels concept_labels(const Embeddings& e, const std::string& name) {
  return explain::labels_from_column(numeric_column(e, name).numbers);
}

double phi(const std::vector<int>& a, const std::vector<int>& b, const std::vector<size_t>& rows) {
  double n11 = 0, n10 = 0, n01 = 0, n00 = 0;
  for (size_t i : rows) (a[i] ? (b[i] ? n11 : n10) : (b[i] ? n01 : n00)) += 1;
  const double den = std::sqrt((n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00));
  return den > 0 ? (n11 * n00 - n10 * n01) / den : 0.0;
}

ClassifierStage to_stage(const cbm::ProtocolResult& res) {
  ClassifierStage st;
  st.test_auroc = res.report.test.auroc;
  st.test_balanced_accuracy = res.report.test.balanced_accuracy;
  st.nnz = res.model.nnz();
  st.report = res.report;
  return st;
}

}  // namespace

QuickCheck quick_check(const Embeddings& e) {
  const Column* split = find_column(e.columns, "split");
  if (!split || split->numeric) throw_input("embeddings: no string column 'split' (expected a demo world file)");
  std::vector<size_t> tr, te;
  for (size_t i = 0; i < split->strings.size(); ++i) (split->strings[i] == "train" ? tr : te).push_back(i);
  QuickCheck q;
  q.n_train = static_cast<int64_t>(tr.size());
  q.n_test = static_cast<int64_t>(te.size());
  if (tr.empty() || te.empty()) throw_input("embeddings: need both train and test rows, found {} and {}", tr.size(), te.size());
  auto gather = [&](const std::vector<size_t>& rows) {
    std::vector<float> x;
    x.reserve(rows.size() * e.dim);
    for (size_t i : rows) x.insert(x.end(), e.row(static_cast<int64_t>(i)), e.row(static_cast<int64_t>(i)) + e.dim);
    return x;
  };
  const std::vector<float> x_tr = gather(tr), x_te = gather(te);
  for (const auto& name : concept_names()) {
    std::vector<int> y = int_column(e, name), y_tr, y_te;
    for (size_t i : tr) y_tr.push_back(y[i]);
    for (size_t i : te) y_te.push_back(y[i]);
    q.concept_auroc[name] = cbm::auroc(ridge_probe_scores(x_tr, y_tr, x_te, e.dim), y_te);
  }
  std::vector<int> hair = int_column(e, "hair"), mal = int_column(e, "malignant");
  q.hair_malignant_corr_train = phi(hair, mal, tr);
  q.hair_malignant_corr_test = phi(hair, mal, te);
  return q;
}

DemoReport run_demo(const DemoParams& p, Device device, ProgressSink& progress) {
  // Every stage's settings are checked before the first image is drawn.
  sae::validate(p.sae);
  cbm::validate(p.cbm);
  if (!(p.hair_latent_auroc > 0.5 && p.hair_latent_auroc <= 1.0))
    throw_usage("demo: --hair-latent-auroc {}: expected a value in (0.5, 1]", p.hair_latent_auroc);
  if (p.batch < 1) throw_usage("demo: --batch {}: expected >= 1", p.batch);

  DemoReport r;
  spdlog::info("demo: generating {} images into {}", p.world.n, p.out_dir);
  r.world = generate_demo_world(p.world, p.out_dir, progress);
  embed::EmbedParams ep;
  ep.model = r.world.encoder_path;
  ep.csv = r.world.meta_csv;
  ep.image_root = r.world.images_dir;
  ep.batch = p.batch;
  r.embeddings_path = (fs::path(p.out_dir) / "embeddings.h5").string();
  ep.out = r.embeddings_path;
  spdlog::info("demo: embedding with the demo encoder into {}", ep.out);
  r.embed = embed::embed_images(ep, embed::resolve_preprocess(ep), device, progress);
  const Embeddings emb = read_embeddings(r.embeddings_path);
  r.check = quick_check(emb);

  // SAE on all rows (unsupervised: the labels never reach it).
  r.sae_path = (fs::path(p.out_dir) / "sae.h5").string();
  r.activations_path = (fs::path(p.out_dir) / "activations.h5").string();
  spdlog::info("demo: training a {} SAE ({} latents) for {} epochs", p.sae.arch, sae::latent_count(p.sae, emb.dim),
               p.sae.epochs);
  const auto t0 = std::chrono::steady_clock::now();
  EmbeddingsReader reader(r.embeddings_path);
  sae::TrainOptions so;
  so.out_path = r.sae_path;
  so.inputs = {r.embeddings_path};
  const SaeWeights w = sae::train(reader, p.sae, device, so, progress);
  write_sae(r.sae_path, w, {r.embeddings_path});
  r.sae_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const sae::Model model = sae::Model::load(r.sae_path, device);
  r.sae_metrics = model.evaluate(reader);
  r.n_latents = model.n_latents();
  model.encode_file(reader, r.activations_path);

  // Which latent detects which concept. The activations are read once, for this and the CBM.
  const cbm::Features acts = cbm::read_features(r.activations_path);
  const auto names = concept_names();
  std::vector<explain::ConceptLabels> labels;
  for (const auto& name : names) labels.push_back(concept_labels(emb, name));
  const auto aucs = explain::latent_aurocs(to_csc(acts.X), labels);
  r.matches = explain::best_latents(aucs, names);
  const size_t hair = std::find(names.begin(), names.end(), "hair") - names.begin();
  r.hair_latents = explain::latents_above(aucs.at(hair), p.hair_latent_auroc);

  // Concept bottleneck (latents) and probe (embeddings): fit on the biased train split.
  spdlog::info("demo: fitting the concept bottleneck and the embedding probe on the train split");
  cbm::ProtocolParams pp;
  pp.model = p.cbm;
  cbm::LoadParams lp;
  lp.features_path = r.activations_path;
  lp.labels_path = r.world.meta_csv;
  lp.label_col = "malignant";
  lp.split_col = "split";
  const cbm::Dataset cbm_data = cbm::load_dataset(lp, acts);
  std::vector<int64_t> train_rows, valid_rows, test_rows;
  cbm::rows_from_split_col(cbm_data, train_rows, valid_rows, test_rows);
  const cbm::ProtocolResult cbm_res = cbm::run_fixed_split(cbm_data, train_rows, {}, test_rows, pp);
  r.cbm = to_stage(cbm_res);
  lp.features_path = r.embeddings_path;
  const cbm::Dataset probe_data = cbm::load_dataset(lp);  // same CSV, so the same rows and split
  r.probe = to_stage(cbm::run_fixed_split(probe_data, train_rows, {}, test_rows, pp));

  // Intervention: the bottleneck without its hair latents, on the same test rows.
  const auto edits = explain::zero_edits(r.hair_latents);
  r.hair_weight_share = explain::weight_share(cbm_res.model, r.hair_latents);
  const auto base = cbm::decision_function(cbm_data.X, cbm_res.model, test_rows);
  const auto logits = explain::edited_logits(cbm_data.X, cbm_res.model, edits, base, test_rows);
  std::vector<int> y_test;
  for (int64_t i : test_rows) y_test.push_back(cbm_data.y[static_cast<size_t>(i)]);
  r.cbm_test_auroc_hair_zeroed =
      cbm::evaluate(y_test, cbm::proba_from_logits(logits, cbm_res.model.n_rows, cbm_data.n_classes()),
                    cbm_data.n_classes())
          .auroc;

  r.report_path = (fs::path(p.out_dir) / "report.json").string();
  AtomicOutput out(r.report_path);
  std::ofstream(out.temp_path()) << to_json(r).dump(2) << "\n";
  out.commit();
  return r;
}

}  // namespace cl::demo
