// The demo pipeline's first stages: world -> embeddings -> probe check.
#include "tools/demo/demo.h"

#include <cmath>
#include <filesystem>

#include <spdlog/spdlog.h>

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

nlohmann::json to_json(const DemoReport& r) {
  return {{"world", to_json(r.world)},
          {"embed", embed::to_json(r.embed)},
          {"check", to_json(r.check)},
          {"embeddings", r.embeddings_path}};
}

namespace {

std::vector<int> int_column(const Embeddings& e, const std::string& name) {
  const Column* c = find_column(e.columns, name);
  if (!c || !c->numeric) throw_input("embeddings: column '{}' missing or not numeric (expected a demo world file)", name);
  std::vector<int> v;
  for (double x : c->numbers) v.push_back(x > 0.5);
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
    q.concept_auroc[name] = auroc(ridge_probe_scores(x_tr, y_tr, x_te, e.dim), y_te);
  }
  std::vector<int> hair = int_column(e, "hair"), mal = int_column(e, "malignant");
  q.hair_malignant_corr_train = phi(hair, mal, tr);
  q.hair_malignant_corr_test = phi(hair, mal, te);
  return q;
}

DemoReport run_demo(const DemoParams& p, torch::Device device, bool quiet) {
  DemoWorldParams wp;
  wp.n = p.n;
  wp.seed = p.seed;
  DemoReport r;
  spdlog::info("demo: generating {} images into {}", p.n, p.out_dir);
  r.world = generate_demo_world(wp, p.out_dir, quiet);
  embed::EmbedParams ep;
  ep.model = r.world.encoder_path;
  ep.csv = r.world.meta_csv;
  ep.image_root = r.world.images_dir;
  ep.batch = p.batch;
  r.embeddings_path = (fs::path(p.out_dir) / "embeddings.h5").string();
  ep.out = r.embeddings_path;
  spdlog::info("demo: embedding with the demo encoder into {}", ep.out);
  r.embed = embed::embed_images(ep, embed::resolve_preprocess(ep), device);
  r.check = quick_check(read_embeddings(r.embeddings_path));
  return r;
}

}  // namespace cl::demo
