// Intervention experiments: scoring with intervals and subgroups, random-latent controls,
// refits on edited training rows, embedding-space edits through the SAE decoder, curves.
#include "explain/experiment.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/error.h"
#include "core/params.h"
#include "core/random.h"

namespace cl::explain {

void validate(const InterveneParams& p) {
  if (p.bootstrap < 0) throw_usage("bootstrap {}: expected >= 0", p.bootstrap);
  if (p.random_control != 0 && p.random_control < 5)
    throw_usage("random_control {}: expected 0 (off) or at least 5 seeds", p.random_control);
}

std::vector<double> edited_proba(const CsrMatrix& acts, const cbm::LogRegFit& m, const std::vector<LatentEdit>& edits,
                                 const std::vector<double>& base, const EvalSet& set, const std::vector<double>& means) {
  const auto z = edits.empty() ? base : edited_logits(acts, m, edits, base, set.rows, means);
  return cbm::proba_from_logits(z, m.n_rows, m.n_classes);
}

Scored score(const EvalSet& set, const std::vector<double>& proba, int n_boot, uint64_t seed) {
  const int C = static_cast<int>(set.classes.size());
  CL_ASSERT(proba.size() == set.y.size() * static_cast<size_t>(C), "proba shape");
  Scored s;
  s.metrics = cbm::evaluate(set.y, proba, C);
  if (n_boot > 0 && !set.y.empty()) {
    s.ci = cbm::bootstrap_metrics(set.y, proba, C, n_boot, seed);
    s.has_ci = true;
  }
  if (!set.group.empty()) {
    const auto pred = cbm::argmax_rows(proba, C);
    std::map<std::pair<int, int>, std::pair<int64_t, int64_t>> cells;  // (group, class) -> (n, correct)
    for (size_t i = 0; i < set.y.size(); ++i) {
      if (set.group[i] < 0) continue;
      auto& c = cells[{set.group[i], set.y[i]}];
      ++c.first;
      c.second += pred[i] == set.y[i];
    }
    for (size_t g = 0; g < set.group_names.size(); ++g) {
      std::vector<int> yg;
      std::vector<double> pg;
      for (size_t i = 0; i < set.y.size(); ++i)
        if (set.group[i] == static_cast<int>(g)) {
          yg.push_back(set.y[i]);
          pg.insert(pg.end(), proba.begin() + static_cast<int64_t>(i) * C, proba.begin() + static_cast<int64_t>(i + 1) * C);
        }
      s.subgroup_auroc.push_back({set.group_names[g], static_cast<int64_t>(yg.size()), cbm::auroc_multi(yg, pg, C)});
    }
    for (const auto& [key, v] : cells) {
      GroupScore g;
      g.group = set.group_names[static_cast<size_t>(key.first)] + " | " + set.classes[static_cast<size_t>(key.second)];
      g.n = v.first;
      g.accuracy = static_cast<double>(v.second) / static_cast<double>(v.first);
      s.worst_group_accuracy = std::isnan(s.worst_group_accuracy) ? g.accuracy : std::min(s.worst_group_accuracy, g.accuracy);
      s.groups.push_back(g);
    }
  }
  return s;
}

InterventionReport intervene(const CsrMatrix& acts, const cbm::LogRegFit& model, const std::vector<LatentEdit>& edits,
                             const EvalSet& set, const InterveneParams& p, const std::vector<int64_t>& train_rows,
                             const std::vector<int>& train_y, const cbm::LogRegParams& refit_params,
                             ProgressSink& progress) {
  validate(p);
  CL_ASSERT(acts.n_cols == model.n_features, "activations and model differ in features");
  CL_ASSERT(set.rows.size() == set.y.size(), "one label per row");
  Progress prog(progress, "intervene", 2 + p.random_control + (p.refit ? 1 : 0), "steps");
  InterventionReport r;
  r.edits = edits;
  // Means over the scored rows: 'mean' edits set a latent to its average on these images.
  const auto means = needs_means(edits) ? latent_means(acts, set.rows) : std::vector<double>{};
  const auto base = cbm::decision_function(acts, model, set.rows);
  const auto p0 = edited_proba(acts, model, {}, base, set, means);
  const auto p1 = edited_proba(acts, model, edits, base, set, means);
  r.before = score(set, p0, p.bootstrap, p.seed);
  prog.add(1);
  r.after = score(set, p1, p.bootstrap, p.seed);
  prog.add(1);
  const int C = model.n_classes;
  const auto pred0 = cbm::argmax_rows(p0, C), pred1 = cbm::argmax_rows(p1, C);
  for (size_t i = 0; i < pred0.size(); ++i) r.n_flipped += pred0[i] != pred1[i];

  if (p.random_control > 0 && !edits.empty()) {
    std::set<int64_t> edited;
    for (const auto& e : edits) edited.insert(e.latent);
    std::vector<int64_t> pool;
    for (int64_t j = 0; j < model.n_features; ++j) {
      bool used = false;
      for (int64_t k = 0; k < model.n_rows; ++k) used = used || model.weights[static_cast<size_t>(k * model.n_features + j)] != 0;
      if (used && !edited.count(j)) pool.push_back(j);
    }
    ControlSummary c;
    c.seeds = p.random_control;
    c.n_latents = static_cast<int64_t>(edits.size());
    c.n_candidates = static_cast<int64_t>(pool.size());
    std::vector<double> acc, worst;
    std::vector<std::vector<double>> sub(set.group_names.size());
    for (int s = 0; s < p.random_control; ++s) {
      Rng rng(splitmix64(p.seed * 1000003ull + static_cast<uint64_t>(s) + 1));
      std::vector<int64_t> draw = pool;
      rng.shuffle(draw);
      draw.resize(std::min(draw.size(), edits.size()));
      std::vector<LatentEdit> ce;
      for (size_t k = 0; k < draw.size(); ++k) ce.push_back({draw[k], edits[k].op, edits[k].value});
      // The control edits use the same ops as `edits`, so `means` covers them.
      const Scored sc = score(set, edited_proba(acts, model, ce, base, set, means), 0, 0);
      c.auroc.push_back(sc.metrics.auroc);
      acc.push_back(sc.metrics.accuracy);
      worst.push_back(sc.worst_group_accuracy);
      for (size_t g = 0; g < sc.subgroup_auroc.size(); ++g) sub[g].push_back(sc.subgroup_auroc[g].auroc);
      prog.add(1);
    }
    c.auroc_summary = cbm::summarize(c.auroc);
    c.accuracy_summary = cbm::summarize(acc);
    c.worst_group_summary = cbm::summarize(worst);
    for (const auto& v : sub) c.subgroup_auroc.push_back(cbm::summarize(v));
    r.control = c;
  }

  if (p.refit) {
    if (train_rows.empty()) throw_usage("--refit needs training rows (a split column with 'train' rows)");
    // Edit the training activations the same way, refit, score on the edited evaluation rows.
    const CsrMatrix edited = apply_edits(acts, edits, needs_means(edits) ? latent_means(acts, train_rows) : means);
    std::vector<int> y_all(static_cast<size_t>(acts.n_rows), 0);
    for (size_t i = 0; i < train_rows.size(); ++i) y_all[static_cast<size_t>(train_rows[i])] = train_y[i];
    const auto refit = cbm::fit_logreg(edited, y_all, model.n_classes, refit_params, train_rows);
    r.refit = score(set, cbm::predict_proba(edited, refit, set.rows), p.bootstrap, p.seed);
    prog.add(1);
  }
  return r;
}

std::vector<float> edit_embeddings(const float* x_nd, const CsrMatrix& acts, const std::vector<LatentEdit>& edits,
                                   const sae::Model& sae, const std::vector<double>& means) {
  CL_ASSERT(acts.n_cols == sae.n_latents(), "codes and SAE differ in latents");
  const CsrMatrix after = apply_edits(acts, edits, means);
  // delta = a - a' over the edited latents only (every other entry cancels).
  CsrMatrix delta;
  delta.n_cols = acts.n_cols;
  std::vector<int32_t> cols;
  std::vector<float> vals;
  for (int64_t i = 0; i < acts.n_rows; ++i) {
    cols.clear(), vals.clear();
    std::map<int32_t, float> d;
    for (const auto [j, v] : acts.row(i)) d[j] += v;
    for (const auto [j, v] : after.row(i)) d[j] -= v;
    for (auto [j, v] : d)
      if (v != 0) cols.push_back(j), vals.push_back(v);
    delta.append_row_sorted(cols.data(), vals.data(), static_cast<int64_t>(cols.size()));
  }
  const auto dx = sae.decode(delta, false);
  std::vector<float> out(x_nd, x_nd + acts.n_rows * sae.d_in());
  for (size_t q = 0; q < out.size(); ++q) out[q] -= dx[q];
  return out;
}

void intervene_embeddings(InterventionReport& r, const float* x_nd, int64_t dim, const CsrMatrix& acts,
                          const sae::Model& sae, const cbm::LogRegFit& probe, const EvalSet& set,
                          const InterveneParams& p) {
  sae.check_dim(dim, "embeddings");
  if (probe.n_features != dim) throw_input("probe has {} features, embeddings have dim {}", probe.n_features, dim);
  // Only the scored rows are decoded and edited.
  const CsrMatrix codes = acts.take_rows(set.rows);
  std::vector<float> x(set.rows.size() * static_cast<size_t>(dim));
  for (size_t i = 0; i < set.rows.size(); ++i)
    std::copy(x_nd + set.rows[i] * dim, x_nd + (set.rows[i] + 1) * dim, x.begin() + static_cast<int64_t>(i) * dim);
  const auto means = needs_means(r.edits) ? latent_means(codes) : std::vector<double>{};
  const auto x2 = edit_embeddings(x.data(), codes, r.edits, sae, means);
  const int64_t n = static_cast<int64_t>(set.rows.size());
  EvalSet local = set;
  for (int64_t i = 0; i < n; ++i) local.rows[static_cast<size_t>(i)] = i;
  r.probe_before = score(local, cbm::predict_proba(csr_from_dense(x.data(), n, dim), probe), p.bootstrap, p.seed);
  r.probe_after = score(local, cbm::predict_proba(csr_from_dense(x2.data(), n, dim), probe), p.bootstrap, p.seed);
}

std::vector<CurvePoint> intervention_curve(const CsrMatrix& acts, const cbm::LogRegFit& model, const EvalSet& set,
                                           const std::string& rule, const std::vector<int64_t>& ranking, int64_t max_k,
                                           EditOp op, double value) {
  const auto base = cbm::decision_function(acts, model, set.rows);
  const auto means = op == EditOp::mean ? latent_means(acts, set.rows) : std::vector<double>{};
  std::vector<CurvePoint> out;
  std::vector<LatentEdit> edits;
  for (int64_t k = 0; k <= std::min<int64_t>(max_k, static_cast<int64_t>(ranking.size())); ++k) {
    if (k > 0) edits.push_back({ranking[static_cast<size_t>(k - 1)], op, value});
    const Scored s = score(set, edited_proba(acts, model, edits, base, set, means), 0, 0);
    out.push_back({rule, k, s.metrics.auroc, s.metrics.accuracy, s.metrics.balanced_accuracy, s.worst_group_accuracy});
  }
  return out;
}

nlohmann::json to_json(const Scored& s) {
  nlohmann::json j = {{"auroc", json_number(s.metrics.auroc)},
                      {"accuracy", json_number(s.metrics.accuracy)},
                      {"balanced_accuracy", json_number(s.metrics.balanced_accuracy)},
                      {"macro_f1", json_number(s.metrics.macro_f1)}};
  if (s.has_ci) j["ci95"] = cbm::to_json(s.ci);
  if (!s.groups.empty()) {
    nlohmann::json g = nlohmann::json::array();
    for (const auto& x : s.groups) g.push_back({{"group", x.group}, {"n", x.n}, {"accuracy", x.accuracy}});
    j["groups"] = g;
    j["worst_group_accuracy"] = json_number(s.worst_group_accuracy);
    nlohmann::json sa = nlohmann::json::array();
    for (const auto& x : s.subgroup_auroc) sa.push_back({{"subgroup", x.subgroup}, {"n", x.n}, {"auroc", json_number(x.auroc)}});
    j["subgroup_auroc"] = sa;
  }
  return j;
}

nlohmann::json to_json(const InterventionReport& r) {
  nlohmann::json edits = nlohmann::json::array();
  for (const auto& e : r.edits) edits.push_back({{"latent", e.latent}, {"op", edit_op_name(e.op)}, {"value", e.value}});
  nlohmann::json j = {{"edits", edits}, {"before", to_json(r.before)}, {"after", to_json(r.after)}, {"n_flipped", r.n_flipped}};
  if (r.control) {
    const auto& c = *r.control;
    j["random_control"] = {{"seeds", c.seeds},
                           {"n_latents", c.n_latents},
                           {"n_candidates", c.n_candidates},
                           {"auroc", cbm::to_json(c.auroc_summary)},
                           {"accuracy", cbm::to_json(c.accuracy_summary)},
                           {"worst_group_accuracy", cbm::to_json(c.worst_group_summary)},
                           {"auroc_per_seed", c.auroc}};
    if (!c.subgroup_auroc.empty()) {
      nlohmann::json sa = nlohmann::json::array();
      for (size_t g = 0; g < c.subgroup_auroc.size(); ++g)
        sa.push_back({{"subgroup", r.after.subgroup_auroc[g].subgroup}, {"auroc", cbm::to_json(c.subgroup_auroc[g])}});
      j["random_control"]["subgroup_auroc"] = sa;
    }
  }
  if (r.refit) j["refit"] = to_json(*r.refit);
  if (r.probe_before) j["embedding_space"] = {{"before", to_json(*r.probe_before)}, {"after", to_json(*r.probe_after)}};
  return j;
}

nlohmann::json to_json(const std::vector<CurvePoint>& c) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : c)
    out.push_back({{"rule", p.rule},
                   {"k", p.k},
                   {"auroc", json_number(p.auroc)},
                   {"accuracy", json_number(p.accuracy)},
                   {"balanced_accuracy", json_number(p.balanced_accuracy)},
                   {"worst_group_accuracy", json_number(p.worst_group_accuracy)}});
  return out;
}

}  // namespace cl::explain
