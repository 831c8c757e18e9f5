// The demo pipeline: world -> embeddings -> probe check -> SAE -> activations -> concept
// matching -> CBM vs probe on the biased split -> hair latents zeroed.
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

nlohmann::json to_json(const DemoReport& r) {
  nlohmann::json matches = nlohmann::json::array();
  for (const auto& m : r.matches) matches.push_back({{"concept", m.concept_name}, {"latent", m.latent}, {"auroc", m.auroc}});
  auto stage = [](const ClassifierStage& c) {
    return nlohmann::json{{"test_auroc", c.test_auroc},
                          {"test_balanced_accuracy", c.test_balanced_accuracy},
                          {"nnz", c.nnz},
                          {"report", c.report}};
  };
  return {{"world", to_json(r.world)},
          {"embed", embed::to_json(r.embed)},
          {"check", to_json(r.check)},
          {"embeddings", r.embeddings_path},
          {"sae", {{"path", r.sae_path}, {"activations", r.activations_path}, {"seconds", r.sae_seconds},
                   {"metrics", r.sae_metrics}}},
          {"concept_latents", matches},
          {"cbm", stage(r.cbm)},
          {"probe", stage(r.probe)},
          {"intervention",
           {{"hair_latents", r.hair_latents},
            {"hair_weight_share", r.hair_weight_share},
            {"cbm_test_auroc", r.cbm.test_auroc},
            {"cbm_test_auroc_hair_zeroed", r.cbm_test_auroc_hair_zeroed}}}};
}

std::vector<std::vector<double>> latent_aurocs(const CsrMatrix& acts_nl, const std::vector<std::vector<int>>& flags) {
  const int64_t n = acts_nl.n_rows, L = acts_nl.n_cols;
  // Column lists (row, value) per latent: one pass over the CSR.
  std::vector<int64_t> col_ptr(L + 1, 0);
  for (int32_t j : acts_nl.indices) ++col_ptr[j + 1];
  for (int64_t j = 0; j < L; ++j) col_ptr[j + 1] += col_ptr[j];
  std::vector<int64_t> col_row(acts_nl.indices.size());
  std::vector<float> col_val(acts_nl.indices.size());
  std::vector<int64_t> fill(col_ptr.begin(), col_ptr.end() - 1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t e = acts_nl.indptr[i]; e < acts_nl.indptr[i + 1]; ++e) {
      const int64_t at = fill[acts_nl.indices[e]]++;
      col_row[at] = i;
      col_val[at] = acts_nl.values[e];
    }
  std::vector<std::vector<double>> out;
  std::vector<std::pair<float, int>> entries;
  for (const auto& y : flags) {
    CL_ASSERT(static_cast<int64_t>(y.size()) == n);
    const int64_t n_pos = std::count(y.begin(), y.end(), 1), n_neg = n - n_pos;
    std::vector<double> a(L, std::nan(""));
    if (n_pos > 0 && n_neg > 0) {
      for (int64_t j = 0; j < L; ++j) {
        entries.clear();
        for (int64_t e = col_ptr[j]; e < col_ptr[j + 1]; ++e) entries.emplace_back(col_val[e], y[col_row[e]]);
        int64_t pos_nz = 0;
        for (auto& [v, l] : entries) pos_nz += l;
        // The implicit zeros are one tie block; Mann-Whitney U over value-sorted tie groups.
        entries.emplace_back(0.0f, -1);
        std::sort(entries.begin(), entries.end(), [](auto& u, auto& v) { return u.first < v.first; });
        double u = 0, neg_below = 0;
        for (size_t s = 0; s < entries.size();) {
          double gp = 0, gn = 0;
          size_t t = s;
          for (; t < entries.size() && entries[t].first == entries[s].first; ++t) {
            if (entries[t].second == 1) gp += 1;
            if (entries[t].second == 0) gn += 1;
            if (entries[t].second == -1) {
              gp += double(n_pos - pos_nz);
              gn += double(n_neg - (static_cast<int64_t>(entries.size()) - 1 - pos_nz));
            }
          }
          u += gp * (neg_below + 0.5 * gn);
          neg_below += gn;
          s = t;
        }
        a[j] = u / (double(n_pos) * double(n_neg));
      }
    }
    out.push_back(std::move(a));
  }
  return out;
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

ClassifierStage to_stage(const cbm::ProtocolResult& res) {
  ClassifierStage st;
  st.test_auroc = res.splits.at(0).metrics.auroc;
  st.test_balanced_accuracy = res.splits.at(0).metrics.balanced_accuracy;
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

DemoReport run_demo(const DemoParams& p, torch::Device device, bool quiet) {
  // Every stage's settings are checked before the first image is drawn.
  SaeParams sp;
  sp.arch = p.sae_arch;
  sp.expansion = p.sae_expansion;
  sp.k = p.sae_k;
  sp.batch = p.sae_batch;
  sp.epochs = p.sae_epochs;
  sp.lr = p.sae_lr;
  sp.seed = static_cast<int64_t>(p.seed);
  sp.checkpoint_every = 0;
  validate_sae_params(sp);
  cbm::ProtocolParams pp;
  pp.model.alpha = p.cbm_alpha;
  cbm::validate(pp.model);
  if (!(p.hair_latent_auroc > 0.5 && p.hair_latent_auroc <= 1.0))
    throw_usage("demo: --hair-latent-auroc {}: expected a value in (0.5, 1]", p.hair_latent_auroc);

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
  const Embeddings emb = read_embeddings(r.embeddings_path);
  r.check = quick_check(emb);

  // SAE on all rows (unsupervised: the labels never reach it).
  r.sae_path = (fs::path(p.out_dir) / "sae.h5").string();
  r.activations_path = (fs::path(p.out_dir) / "activations.h5").string();
  spdlog::info("demo: training a {} SAE ({} latents) for {} epochs", sp.arch, sp.expansion * emb.dim, sp.epochs);
  const auto t0 = std::chrono::steady_clock::now();
  EmbeddingsReader reader(r.embeddings_path);
  SaeTrainOptions so;
  so.out_path = r.sae_path;
  so.inputs = {r.embeddings_path};
  so.quiet = quiet;
  const SaeWeights w = train_sae(reader, sp, device, so);
  write_sae(r.sae_path, w, {r.embeddings_path});
  r.sae_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.sae_metrics = evaluate_sae(w, reader, device);
  r.sae_metrics["n_latents"] = w.n_latents;
  encode_file(w, reader, r.activations_path, device, 8192, true, {r.embeddings_path, r.sae_path});

  // Which latent detects which concept. The activations are read once, for this and the CBM.
  const cbm::Features acts = cbm::read_features(r.activations_path);
  const auto names = concept_names();
  std::vector<std::vector<int>> flags;
  for (const auto& name : names) flags.push_back(int_column(emb, name));
  const auto aucs = latent_aurocs(acts.X, flags);
  for (size_t c = 0; c < names.size(); ++c) {
    const auto& a = aucs[c];
    const int64_t best = std::max_element(a.begin(), a.end()) - a.begin();
    r.matches.push_back({names[c], best, a[best]});
    if (names[c] == "hair")
      for (int64_t j = 0; j < static_cast<int64_t>(a.size()); ++j)
        if (a[j] >= p.hair_latent_auroc) r.hair_latents.push_back(j);
  }

  // Concept bottleneck (latents) and probe (embeddings): fit on the biased train split.
  spdlog::info("demo: fitting the concept bottleneck and the embedding probe on the train split");
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
  cbm::LogRegFit zeroed = cbm_res.model;
  double share = 0, total = 0;
  for (int64_t j = 0; j < zeroed.n_features; ++j) total += std::abs(zeroed.weights[j]);
  for (int64_t j : r.hair_latents) {
    share += std::abs(zeroed.weights[j]);
    zeroed.weights[j] = 0;
  }
  r.hair_weight_share = total > 0 ? share / total : 0;
  const auto proba = cbm::predict_proba(cbm_data.X, zeroed, test_rows);
  std::vector<double> p1;
  std::vector<int> y_test;
  for (size_t i = 0; i < test_rows.size(); ++i) {
    p1.push_back(proba[2 * i + 1]);
    y_test.push_back(cbm_data.y[test_rows[i]]);
  }
  r.cbm_test_auroc_hair_zeroed = cbm::auroc(p1, y_test);

  r.report_path = (fs::path(p.out_dir) / "report.json").string();
  AtomicOutput out(r.report_path);
  std::ofstream(out.temp_path()) << to_json(r).dump(2) << "\n";
  out.commit();
  return r;
}

}  // namespace cl::demo
