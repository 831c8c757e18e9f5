// Concept matching: the AUROC/AP matrices over the column view, per-concept summaries, latent
// sets from the L1 path and the embedding probe on the same held-out splits.
#include "explain/match.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include "cbm/logreg.h"
#include "cbm/metrics.h"
#include "cbm/protocol.h"
#include "core/error.h"
#include "core/params.h"
#include "core/parallel.h"

namespace cl::explain {

void validate(const MatchParams& p) {
  if (p.top < 1) throw_usage("top {}: expected >= 1", p.top);
  if (p.max_latents < 1) throw_usage("max_latents {}: expected >= 1", p.max_latents);
  if (!(p.named_auroc >= 0.5 && p.named_auroc <= 1)) throw_usage("named_auroc {}: expected [0.5, 1]", p.named_auroc);
  if (!(p.probe_margin >= 0)) throw_usage("probe_margin {}: expected >= 0", p.probe_margin);
  if (p.splits < 1) throw_usage("splits {}: expected >= 1", p.splits);
  if (!(p.test_size > 0 && p.test_size < 1)) throw_usage("test_size {}: expected (0, 1)", p.test_size);
  if (p.path_alphas < 2) throw_usage("path_alphas {}: expected >= 2", p.path_alphas);
  if (p.threads < 0) throw_usage("threads {}: expected >= 0", p.threads);
  if (p.min_positives < 1) throw_usage("min_positives {}: expected >= 1", p.min_positives);
}

namespace {

// The smallest-penalty fit on the L1 path with at most k non-zero weights: walk the path from the
// alpha that zeroes every weight downwards (warm-started) and stop at the first fit with more than
// k; when latents enter in a jump past k, bisect (in log alpha) between the last two fits. Null
// when no latent enters at all.
std::optional<cbm::LogRegFit> l1_path_fit(const CscMatrix& X_by_col, const std::vector<int>& y,
                                          std::vector<int64_t> rows, const MatchParams& p) {
  cbm::LogRegParams lp;
  lp.penalty = "l1";
  lp.standardize = true;  // latents differ in scale; the path should not favour large ones
  lp.max_iter = 200;
  // One design for the whole path, cut from the caller's column view (a conversion per fit, then
  // per path, dominated the run); the fit does not depend on the order of its rows.
  std::sort(rows.begin(), rows.end());
  const auto D = cbm::make_design(X_by_col, rows, lp.standardize);
  const double hi = cbm::l1_alpha_max(*D, y, rows);
  if (!(hi > 0)) return std::nullopt;
  // Each fit starts where the last one within k ended (the best so far, or an empty fit).
  std::optional<cbm::LogRegFit> best;
  cbm::FitState start, end;
  auto fit = [&](double alpha) {
    lp.alpha = alpha;
    return cbm::fit_logreg(*D, y, 2, lp, rows, &start, &end);
  };
  double a_in = hi;  // largest alpha known to give <= k
  for (double a : cbm::log_alphas(hi * 0.999, hi * 1e-3, p.path_alphas)) {
    cbm::LogRegFit f = fit(a);
    if (f.nnz() <= p.max_latents) {
      if (f.nnz() > 0) best = std::move(f), std::swap(start, end);
      a_in = a;
      continue;
    }
    double a_out = a;  // gives > k
    for (int it = 0; it < 12 && a_in / a_out > 1.001; ++it) {
      const double mid = std::sqrt(a_in * a_out);
      cbm::LogRegFit g = fit(mid);
      if (g.nnz() <= p.max_latents) {
        if (g.nnz() > 0 && (!best || g.nnz() >= best->nnz())) best = std::move(g), std::swap(start, end);
        a_in = mid;
      } else {
        a_out = mid;
      }
    }
    break;
  }
  return best;
}

double test_auroc(const CsrMatrix& X, const cbm::LogRegFit& f, const std::vector<int>& y,
                  const std::vector<int64_t>& test) {
  const auto proba = cbm::predict_proba(X, f, test);
  std::vector<double> s;
  std::vector<int> l;
  for (size_t i = 0; i < test.size(); ++i) s.push_back(proba[i * 2 + 1]), l.push_back(y[static_cast<size_t>(test[i])]);
  return cbm::auroc(s, l);
}

void held_out(const CsrMatrix& acts, const CscMatrix& csc, const CsrMatrix* emb, const ConceptLabels& labels, const MatchParams& p,
              ConceptSummary& out) {
  std::vector<int64_t> rows;
  std::vector<int> y(labels.size(), 0), y_sub;
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] >= 0) rows.push_back(static_cast<int64_t>(i)), y[i] = labels[i], y_sub.push_back(labels[i]);
  if (const auto f = l1_path_fit(csc, y, rows, p))
    for (int64_t j = 0; j < f->n_features; ++j)
      if (f->weights[static_cast<size_t>(j)] != 0) out.latent_set.push_back(j);
  std::vector<double> set_a, set_n, probe_a;
  for (int s = 0; s < p.splits; ++s) {
    cbm::Split sp;
    try {
      sp = cbm::stratified_split(y_sub, 2, p.test_size, p.seed + static_cast<uint64_t>(s), out.name);
    } catch (const InputError& e) {
      out.note = e.what();
      return;
    }
    std::vector<int64_t> train, test;
    for (auto i : sp.train) train.push_back(rows[static_cast<size_t>(i)]);
    for (auto i : sp.test) test.push_back(rows[static_cast<size_t>(i)]);
    std::vector<int64_t> set;
    set_a.push_back(heldout_set_auroc(acts, csc, y, train, test, p, &set));
    set_n.push_back(static_cast<double>(set.size()));
    if (emb) probe_a.push_back(heldout_probe_auroc(*emb, y, train, test));
  }
  const auto sa = cbm::summarize(set_a);
  out.set_auroc = sa.mean, out.set_auroc_std = sa.std, out.set_size_mean = cbm::summarize(set_n).mean;
  if (emb) {
    const auto pa = cbm::summarize(probe_a);
    out.probe_auroc = pa.mean, out.probe_auroc_std = pa.std;
  }
}

}  // namespace

double heldout_set_auroc(const CsrMatrix& acts, const CscMatrix& csc, const std::vector<int>& y,
                         const std::vector<int64_t>& train, const std::vector<int64_t>& test, const MatchParams& p,
                         std::vector<int64_t>* latents_out) {
  if (latents_out) latents_out->clear();
  const auto f = l1_path_fit(csc, y, train, p);
  if (!f) return 0.5;  // no latent enters the path before it exceeds K: chance
  if (latents_out)
    for (int64_t j = 0; j < f->n_features; ++j)
      if (f->weights[static_cast<size_t>(j)] != 0) latents_out->push_back(j);
  return test_auroc(acts, *f, y, test);
}

double heldout_probe_auroc(const CsrMatrix& emb, const std::vector<int>& y, const std::vector<int64_t>& train,
                           const std::vector<int64_t>& test) {
  cbm::LogRegParams lp;
  lp.penalty = "l2";
  lp.solver = "lbfgs";
  lp.tol = 1e-6;
  lp.alpha = cbm::panderm_alpha(emb.n_cols, 2, static_cast<int64_t>(train.size()));
  return test_auroc(emb, cbm::fit_logreg(emb, y, 2, lp, train), y, test);
}

MatchReport match_concepts(const CsrMatrix& acts, const std::vector<std::string>& names,
                           const std::vector<ConceptLabels>& labels, const CsrMatrix* emb, const MatchParams& p,
                           ProgressSink& progress) {
  validate(p);
  CL_ASSERT(names.size() == labels.size(), "one name per concept");
  if (emb) CL_ASSERT(emb->n_rows == acts.n_rows, "embeddings and activations differ in rows");
  Progress prog(progress, "explain match", static_cast<int64_t>(names.size()) + 1, "concepts");
  MatchReport r;
  const CscMatrix csc = to_csc(acts);
  r.auroc = latent_aurocs(csc, labels, p.threads);
  r.ap = latent_scores(csc, labels, LatentMetric::average_precision, p.threads);
  prog.add(1);
  const int64_t L = acts.n_cols;
  // Concepts are independent (each its own splits and L1 paths): one per thread, in any order,
  // each written to its own slot, so the report is the sequential one.
  r.concepts.resize(names.size());
  parallel_for(static_cast<int64_t>(names.size()), p.threads, [&](int64_t ci) {
    const size_t c = static_cast<size_t>(ci);
    ConceptSummary& s = r.concepts[c];
    s.name = names[c];
    for (int8_t v : labels[c]) s.n_pos += v == 1, s.n_neg += v == 0;
    std::vector<int64_t> order;
    for (int64_t j = 0; j < L; ++j)
      if (!std::isnan(r.auroc[c][static_cast<size_t>(j)])) order.push_back(j);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return r.auroc[c][a] > r.auroc[c][b]; });
    for (size_t k = 0; k < order.size() && k < static_cast<size_t>(p.top); ++k)
      s.best.push_back({order[k], r.auroc[c][static_cast<size_t>(order[k])], r.ap[c][static_cast<size_t>(order[k])]});
    s.margin = order.size() >= 2 ? r.auroc[c][order[0]] - r.auroc[c][order[1]] : std::nan("");
    if (s.n_pos > 0 && s.n_neg > 0) held_out(acts, csc, emb, labels[c], p, s);
    else s.note = "one class only among the annotated images";
    prog.add(1);
  });
  // Per latent: its best concept (latents that never fire have no AUROC worth naming).
  const CsrMatrix& a = acts;
  std::vector<int64_t> fires(static_cast<size_t>(L), 0);
  for (int32_t j : a.indices) ++fires[static_cast<size_t>(j)];
  Coverage& cov = r.coverage;
  cov.n_latents = L;
  cov.concepts = static_cast<int64_t>(names.size());
  for (int64_t j = 0; j < L; ++j) {
    if (fires[static_cast<size_t>(j)] == 0) continue;
    ++cov.alive;
    LatentBest b;
    b.latent = j;
    b.auroc = std::nan("");
    for (size_t c = 0; c < names.size(); ++c) {
      if (r.concepts[c].n_pos < p.min_positives) continue;
      const double v = r.auroc[c][static_cast<size_t>(j)];
      if (!std::isnan(v) && (b.concept_index < 0 || v > b.auroc)) b.concept_index = static_cast<int64_t>(c), b.auroc = v;
    }
    b.named = b.concept_index >= 0 && b.auroc >= p.named_auroc;
    cov.named += b.named;
    r.per_latent.push_back(b);
  }
  for (const auto& s : r.concepts) {
    const double best = s.best.empty() ? 0.0 : s.best[0].auroc;
    cov.single_above_08 += best >= 0.8;
    cov.single_above_09 += best >= 0.9;
    if (!std::isnan(s.probe_auroc)) {
      ++cov.with_probe;
      cov.sets_near_probe += s.set_auroc >= s.probe_auroc - p.probe_margin;
    }
  }
  return r;
}

nlohmann::json to_json(const MatchReport& r) {
  nlohmann::json concepts = nlohmann::json::array();
  for (const auto& s : r.concepts) {
    nlohmann::json best = nlohmann::json::array();
    for (size_t k = 0; k < s.best.size(); ++k)
      best.push_back({{"rank", k + 1}, {"latent", s.best[k].latent}, {"auroc", json_number(s.best[k].auroc)}, {"ap", json_number(s.best[k].ap)}});
    nlohmann::json c = {{"concept", s.name},
                        {"n_pos", s.n_pos},
                        {"n_neg", s.n_neg},
                        {"best", best},
                        {"margin", json_number(s.margin)},
                        {"latent_set", s.latent_set},
                        {"set_auroc", json_number(s.set_auroc)},
                        {"set_auroc_std", json_number(s.set_auroc_std)},
                        {"set_size_mean", json_number(s.set_size_mean)},
                        {"probe_auroc", json_number(s.probe_auroc)},
                        {"probe_auroc_std", json_number(s.probe_auroc_std)}};
    if (!s.note.empty()) c["note"] = s.note;
    concepts.push_back(c);
  }
  nlohmann::json latents = nlohmann::json::array();
  for (const auto& b : r.per_latent)
    latents.push_back({{"latent", b.latent},
                       {"concept", b.concept_index >= 0 ? nlohmann::json(r.concepts[b.concept_index].name) : nlohmann::json()},
                       {"auroc", json_number(b.auroc)}});
  const auto& c = r.coverage;
  return {{"concepts", concepts},
          {"latents", latents},
          {"coverage",
           {{"n_latents", c.n_latents},
            {"alive", c.alive},
            {"named", c.named},
            {"concepts", c.concepts},
            {"single_latent_auroc_0.8", c.single_above_08},
            {"single_latent_auroc_0.9", c.single_above_09},
            {"sets_within_margin_of_probe", c.sets_near_probe},
            {"concepts_with_probe", c.with_probe}}}};
}

}  // namespace cl::explain
