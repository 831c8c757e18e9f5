// The demo: a fresh world, the pipeline on it, and the story read off the workspace's report.
#include "tools/demo/demo.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "cbm/metrics.h"
#include "core/error.h"
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

double phi(const std::vector<int>& a, const std::vector<int>& b, const std::vector<size_t>& rows) {
  double n11 = 0, n10 = 0, n01 = 0, n00 = 0;
  for (size_t i : rows) (a[i] ? (b[i] ? n11 : n10) : (b[i] ? n01 : n00)) += 1;
  const double den = std::sqrt((n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00));
  return den > 0 ? (n11 * n00 - n10 * n01) / den : 0.0;
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

pipeline::PipelineParams demo_pipeline_params() {
  pipeline::PipelineParams p;
  p.data.label_col = "malignant";
  p.data.split_col = "split";
  p.data.concept_cols = concept_names();
  p.data.subgroup_col = "hair";
  p.embed.batch = 64;
  // The spatial path: the encoder's 8 x 8 patch tokens, an SAE trained on patches, an image's
  // activation the max over its patches, heatmaps, and localisation against the world's masks
  // (data.masks, set by run_demo).
  p.embed.patches = true;
  p.pool = "max";
  // A BatchTopK SAE (top-k over the batch: a patch gets as many latents as it shows concepts,
  // k on average) with about as many latents as dimensions, and the pre-bias at zero: the demo
  // encoder puts "no concept" at the origin, and a median pre-bias would sit on the common
  // concepts.
  p.sae.arch = "batchtopk";
  p.sae.k = 2;
  p.sae.n_latents = 512;
  p.sae.batch = 1024;
  p.sae.epochs = 3;
  p.sae.lr = 1e-3;
  p.sae.pre_bias_init = "zero";
  p.sae.checkpoint_every = 0;
  p.match.splits = 3;
  p.interventions = {{"hair", "named", 3, "zero", ""}};
  p.curve.by = {"weight", "annotation", "random"};
  p.curve.concept_col = "hair";
  p.curve.max_k = 10;
  return p;
}

nlohmann::json to_json(const DemoReport& r) {
  nlohmann::json concepts = nlohmann::json::array();
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  for (const auto& c : r.concepts)
    concepts.push_back({{"concept", c.concept_name}, {"latent", c.latent}, {"auroc", c.auroc}, {"pointing", num(c.pointing)},
                        {"control_pointing", num(c.control_pointing)}, {"patch_auroc", num(c.patch_auroc)}});
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : r.steps) steps.push_back({{"step", s.name}, {"ran", s.ran}, {"seconds", s.seconds}});
  return {{"world", to_json(r.world)},
          {"workspace", r.workspace},
          {"report_md", r.report_md},
          {"steps", steps},
          {"sae", {{"n_latents", r.n_latents}, {"fvu", r.sae_fvu}, {"l0", r.sae_l0}, {"dead_fraction", r.sae_dead}}},
          {"concepts", concepts},
          {"cbm_auroc", r.cbm_auroc},
          {"probe_auroc", r.probe_auroc},
          {"unbiased_auroc", r.unbiased_auroc},
          {"hair_latents", r.hair_latents},
          {"hair_zeroed_auroc", r.hair_zeroed_auroc},
          {"random_control", {{"mean", r.control_mean}, {"ci95", {r.control_lo, r.control_hi}}}},
          {"recovered", r.recovered}};
}

namespace {
double num_or(const nlohmann::json& j, double fallback = std::nan("")) { return j.is_number() ? j.get<double>() : fallback; }
}  // namespace

DemoReport run_demo(const DemoParams& p, Device device, ProgressSink& progress) {
  pipeline::PipelineParams pp = p.pipeline;
  pp.data.csv = "set by the demo";
  pp.embed.model = "set by the demo";
  if (pp.embed.patches) pp.data.masks = "set by the demo";
  pipeline::validate(pp);  // every stage's settings are checked before the first image is drawn
  DemoReport r;
  spdlog::info("demo: generating {} images into {}", p.world.n, p.out_dir);
  r.world = generate_demo_world(p.world, p.out_dir, progress);
  pp.data.csv = r.world.meta_csv;
  pp.data.image_root = r.world.images_dir;
  pp.embed.model = r.world.encoder_path;
  if (pp.embed.patches) pp.data.masks = r.world.masks_path;
  pipeline::RunOptions o;
  o.workspace = p.out_dir;
  o.device = device.str();
  o.force = "embed";  // a fresh world: everything runs
  const auto res = pipeline::run_pipeline(pp, o, progress);
  r.workspace = res.workspace;
  r.report_md = (fs::path(p.out_dir) / "report.md").string();
  r.steps = res.steps;
  r.report = res.report;
  const auto& rep = res.report;
  r.n_latents = rep["sae"].value("n_latents", int64_t{0});
  r.sae_fvu = rep["sae"].value("fvu", 0.0);
  r.sae_l0 = rep["sae"].value("l0", 0.0);
  r.sae_dead = rep["sae"].value("dead_fraction", 0.0);
  for (const auto& c : rep["match"]["concepts"])
    r.concepts.push_back({c["concept"].get<std::string>(), c["best"].empty() ? -1 : c["best"][0]["latent"].get<int64_t>(),
                          c["best"].empty() ? 0.0 : num_or(c["best"][0]["auroc"], 0.0)});
  if (rep.contains("localize"))
    for (const auto& l : rep["localize"]["concepts"])
      for (auto& c : r.concepts)
        if (c.concept_name == l["concept"] && c.latent == l["latent"].get<int64_t>()) {
          c.pointing = num_or(l["pointing"]);
          c.control_pointing = num_or(l["control_pointing"]);
          c.patch_auroc = num_or(l["patch_auroc"]);
        }
  r.cbm_auroc = num_or(rep["classify"]["cbm"]["test"]["auroc"]);
  r.probe_auroc = num_or(rep["classify"]["probe"]["test"]["auroc"]);
  r.unbiased_auroc = num_or(rep["classify"]["unbiased"]["test"]["auroc"]);
  for (const auto& iv : rep["interventions"]) {
    if (iv["concept"] != "hair" || !iv.contains("report")) continue;
    r.hair_latents = iv["latents"].get<std::vector<int64_t>>();
    const auto& x = iv["report"];
    r.hair_zeroed_auroc = num_or(x["after"]["auroc"]);
    if (x.contains("random_control")) {
      r.control_mean = num_or(x["random_control"]["auroc"]["mean"]);
      r.control_lo = num_or(x["random_control"]["auroc"]["ci95"][0]);
      r.control_hi = num_or(x["random_control"]["auroc"]["ci95"][1]);
    }
  }
  const double loss = r.unbiased_auroc - r.cbm_auroc;
  r.recovered = loss > 0 ? (r.hair_zeroed_auroc - r.cbm_auroc) / loss : std::nan("");
  return r;
}

}  // namespace cl::demo
