// Latent rankings per concept (named, annotation, direction, weight, random), the edits a rule
// picks, and intervention curves over rules.
#include "explain/rules.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "cbm/metrics.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/parse.h"
#include "core/random.h"
#include "core/vocab.h"
#include "explain/contrib.h"
#include "explain/data.h"
#include "explain/naming.h"

namespace cl::explain {

const char* rule_name(Rule r) {
  for (const auto& i : kRules)
    if (i.rule == r) return i.name;
  CL_ASSERT(false, "a Rule without a kRules entry");
  return "";
}

std::string rule_choices() {
  std::string s;
  for (const auto& i : kRules) s += (s.empty() ? "" : " | ") + std::string(i.name);
  return s;
}

Rule parse_rule(const std::string& s, const std::string& what) {
  for (const auto& i : kRules)
    if (s == i.name) return i.rule;
  throw_usage("{} '{}': expected {}", what, s, rule_choices());
}

bool rule_needs_concept(Rule r) { return r == Rule::named || r == Rule::annotation || r == Rule::direction; }

namespace {

template <typename T>
const T& need(const T* p, Rule r, const char* what) {
  if (!p) throw_usage("the {} rule needs {}", rule_name(r), what);
  return *p;
}

// The concept's vector for the direction rule: a vocabulary entry, or the probe direction of the
// concept's annotation column on the embeddings.
std::vector<float> concept_vector(const ConceptRef& c, const RuleInputs& in) {
  if (!in.vocab.empty()) return vocab_entry(read_vocab(in.vocab), c.name_or_col(), in.vocab);
  if (in.embeddings.empty()) throw_usage("the direction rule needs a vocabulary or the embeddings (for the concept's probe direction)");
  if (in.labels_csv.empty()) throw_usage("the direction rule without a vocabulary needs the labels CSV");
  const Embeddings e = read_embeddings(in.embeddings);
  const auto ann = read_annotations(in.labels_csv, in.id_col, {c.col()}, e.ids);
  return concept_vectors(csr_from_dense(e.data.data(), e.n, e.dim), ann.labels);
}

}  // namespace

std::vector<int64_t> rank_latents(Rule rule, const ConceptRef& c, const RuleInputs& in, uint64_t seed) {
  if (rule_needs_concept(rule) && c.col().empty()) throw_usage("the {} rule needs a concept", rule_name(rule));
  switch (rule) {
    case Rule::named:
      return latents_named(need(in.names, rule, "latent names"), c.name_or_col(),
                           need(in.model, rule, "the CBM"));
    case Rule::annotation: {
      if (in.labels_csv.empty()) throw_usage("the annotation rule needs the labels CSV with the concept column");
      const auto& ids = need(in.ids, rule, "the activations' image ids");
      return latents_by_annotation(need(in.acts, rule, "the activations"),
                                   read_annotations(in.labels_csv, in.id_col, {c.col()}, ids).labels[0]);
    }
    case Rule::direction: {
      if (in.sae.empty()) throw_usage("the direction rule needs the SAE");
      const SaeWeights w = read_sae(in.sae);
      if (in.model && in.model->n_features != w.n_latents)
        throw_input("{}: {} latents, the CBM has {} features", in.sae, w.n_latents, in.model->n_features);
      return latents_by_direction(w, concept_vector(c, in));
    }
    case Rule::weight:
      return latents_by_weight(need(in.model, rule, "the CBM"));
    case Rule::random: {
      auto r = latents_by_weight(need(in.model, rule, "the CBM"));
      Rng rng(splitmix64(seed + 1));
      rng.shuffle(r);
      return r;
    }
  }
  CL_ASSERT(false, "unhandled Rule");
  return {};
}

std::string ranking_label(Rule rule, const ConceptRef& c, const RuleInputs& in, uint64_t seed) {
  switch (rule) {
    case Rule::weight: return "weight";
    case Rule::random: return fmt::format("random:{}", seed);
    case Rule::named: return "named:" + c.name_or_col();
    case Rule::direction: return "direction:" + (!in.vocab.empty() && !c.name.empty() ? c.name : c.col());
    case Rule::annotation: return "annotation:" + c.col();
  }
  return "";
}

void validate(const RuleEdits& r, const std::string& what) {
  const Rule rule = parse_rule(r.by, what + " by");
  if (rule_needs_concept(rule) && r.concept_name.empty() && r.concept_col.empty())
    throw_usage("{}: rule {} needs a concept (concept_name)", what, r.by);
  if (rule == Rule::random) throw_usage("{}: rule random is the control, not a choice of latents", what);
  if (r.top_n < 1 || r.top_n > 1000000) throw_usage("{}: top_n {}: expected 1..1000000", what, r.top_n);
  if (r.op != "zero" && r.op != "mean") throw_usage("{}: op '{}': expected zero or mean", what, r.op);
}

std::vector<int64_t> rule_latents(const RuleEdits& r, const RuleInputs& in) {
  validate(r);
  auto ranking = rank_latents(parse_rule(r.by), {r.concept_name, r.concept_col}, in);
  if (static_cast<int64_t>(ranking.size()) > r.top_n) ranking.resize(static_cast<size_t>(r.top_n));
  return ranking;
}

std::vector<LatentEdit> rule_edits(const RuleEdits& r, const RuleInputs& in) {
  std::vector<LatentEdit> edits;
  for (auto j : rule_latents(r, in)) edits.push_back({j, parse_edit_op(r.op), 0});
  return edits;
}

void validate(const CurveParams& p, const std::string& what) {
  for (const auto& b : p.by) {
    const Rule r = parse_rule(b, what + " rule");
    if (rule_needs_concept(r) && p.concept_col.empty() && p.concept_name.empty())
      throw_usage("{}: rule {} needs a concept (concept_col, or concept_name for named and vocabulary entries)", what, b);
  }
  if (p.max_k < 1 || p.max_k > 1000000) throw_usage("{}: max_k {}: expected 1..1000000", what, p.max_k);
  if (p.seeds < 1 || p.seeds > 100000) throw_usage("{}: seeds {}: expected 1..100000", what, p.seeds);
  if (p.op != "zero" && p.op != "mean") throw_usage("{}: op '{}': expected zero or mean", what, p.op);
}

std::vector<CurvePoint> intervention_curves(const CsrMatrix& acts, const cbm::LogRegFit& model, const EvalSet& set,
                                            const RuleInputs& in, const CurveParams& p) {
  validate(p);
  const EditOp op = parse_edit_op(p.op);
  const ConceptRef c{p.concept_name, p.concept_col};
  std::vector<CurvePoint> out;
  for (const auto& b : p.by) {
    const Rule rule = parse_rule(b);
    const int n_orders = rule == Rule::random ? p.seeds : 1;
    for (int i = 0; i < n_orders; ++i) {
      const uint64_t seed = p.seed + static_cast<uint64_t>(i);
      const auto pts = intervention_curve(acts, model, set, ranking_label(rule, c, in, seed),
                                          rank_latents(rule, c, in, seed), p.max_k, op);
      out.insert(out.end(), pts.begin(), pts.end());
    }
  }
  return out;
}

CsvTable curve_table(const std::vector<CurvePoint>& points) {
  CsvTable t;
  t.header = {"rule", "k", "auroc", "accuracy", "balanced_accuracy", "worst_group_accuracy"};
  for (const auto& pt : points)
    t.rows.push_back({pt.rule, std::to_string(pt.k), format_number(pt.auroc), format_number(pt.accuracy),
                      format_number(pt.balanced_accuracy), format_number(pt.worst_group_accuracy)});
  return t;
}

std::vector<CurvePoint> curve_points(const CsvTable& t, const std::string& source) {
  const size_t cr = t.col("rule"), ck = t.col("k"), ca = t.col("auroc");
  auto opt = [&](const char* name) {
    const auto it = std::find(t.header.begin(), t.header.end(), name);
    return it == t.header.end() ? t.header.size() : static_cast<size_t>(it - t.header.begin());
  };
  const size_t cacc = opt("accuracy"), cbal = opt("balanced_accuracy"), cw = opt("worst_group_accuracy");
  auto num = [&](const std::vector<std::string>& row, size_t c, const char* name, bool nan_ok) {
    if (c >= row.size()) return std::numeric_limits<double>::quiet_NaN();
    double v;
    if (!parse_number(row[c], v) && !(nan_ok && (row[c] == "nan" || row[c].empty())))
      throw_input("{}: {} '{}' is not a number", source, name, row[c]);
    return nan_ok && (row[c] == "nan" || row[c].empty()) ? std::numeric_limits<double>::quiet_NaN() : v;
  };
  std::vector<CurvePoint> out;
  for (const auto& row : t.rows) {
    CurvePoint pt;
    pt.rule = row[cr];
    const double k = num(row, ck, "k", false);
    if (k < 0 || k != std::floor(k) || k > 1e9) throw_input("{}: k '{}': expected a count", source, row[ck]);
    pt.k = static_cast<int64_t>(k);
    pt.auroc = num(row, ca, "auroc", true);
    pt.accuracy = num(row, cacc, "accuracy", true);
    pt.balanced_accuracy = num(row, cbal, "balanced_accuracy", true);
    pt.worst_group_accuracy = num(row, cw, "worst_group_accuracy", true);
    out.push_back(pt);
  }
  return out;
}

std::vector<Series> curve_series(const std::vector<CurvePoint>& points) {
  std::vector<Series> out;
  std::map<int64_t, std::vector<double>> random_by_k;
  std::vector<std::string> random_seeds;
  bool random_placed = false;
  size_t random_at = 0;
  for (const auto& pt : points) {
    if (pt.rule.rfind("random:", 0) == 0) {
      if (!random_placed) random_at = out.size(), random_placed = true;
      if (std::find(random_seeds.begin(), random_seeds.end(), pt.rule) == random_seeds.end()) random_seeds.push_back(pt.rule);
      random_by_k[pt.k].push_back(pt.auroc);
      continue;
    }
    if (out.empty() || out.back().name != pt.rule) {
      out.emplace_back();
      out.back().name = pt.rule;
    }
    out.back().x.push_back(double(pt.k)), out.back().y.push_back(pt.auroc);
  }
  if (random_placed) {
    Series sr;
    sr.name = fmt::format("random, {} seeds", random_seeds.size());
    for (const auto& [k, v] : random_by_k) {
      const auto sm = cbm::summarize(v);
      sr.x.push_back(double(k)), sr.y.push_back(sm.mean), sr.lo.push_back(sm.lo), sr.hi.push_back(sm.hi);
    }
    out.insert(out.begin() + static_cast<std::ptrdiff_t>(random_at), sr);
  }
  return out;
}

// ---- the rules' building blocks

std::vector<int64_t> latents_by_annotation(const CsrMatrix& acts, const ConceptLabels& labels) {
  const auto auc = latent_aurocs(to_csc(acts), {labels})[0];
  std::vector<int64_t> r;
  for (int64_t j = 0; j < static_cast<int64_t>(auc.size()); ++j)
    if (!std::isnan(auc[static_cast<size_t>(j)])) r.push_back(j);
  std::stable_sort(r.begin(), r.end(), [&](int64_t a, int64_t b) { return auc[a] > auc[b]; });
  return r;
}

std::vector<int64_t> latents_by_direction(const SaeWeights& w, const std::vector<float>& vec) {
  if (static_cast<int64_t>(vec.size()) != w.d_in)
    throw_input("concept vector of dim {}, the SAE has dim {}", vec.size(), w.d_in);
  const auto r = name_by_direction(w.W_dec, w.n_latents, w.d_in, {"concept"}, vec, {}, {}, {},
                                   NameParams{-1.0, static_cast<int>(w.n_latents)});
  std::vector<int64_t> out;
  for (auto [j, c] : r.matches[0].nearest) out.push_back(j);
  return out;
}

std::vector<int64_t> latents_named(const LatentNames& names, const std::string& concept_name,
                                   const cbm::LogRegFit& model) {
  auto out = names.latents_named(concept_name);
  const auto rank = importance_ranks(model);
  auto key = [&](int64_t j) {
    return j < static_cast<int64_t>(rank.size()) && rank[static_cast<size_t>(j)] > 0 ? rank[static_cast<size_t>(j)]
                                                                                      : std::numeric_limits<int64_t>::max();
  };
  std::stable_sort(out.begin(), out.end(), [&](int64_t a, int64_t b) { return key(a) < key(b); });
  return out;
}

std::vector<int64_t> latents_by_weight(const cbm::LogRegFit& model) {
  const auto rank = importance_ranks(model);
  std::vector<int64_t> used;
  for (int64_t j = 0; j < model.n_features; ++j)
    if (rank[static_cast<size_t>(j)] > 0) used.push_back(j);
  std::stable_sort(used.begin(), used.end(), [&](int64_t a, int64_t b) { return rank[a] < rank[b]; });
  return used;
}

}  // namespace cl::explain
