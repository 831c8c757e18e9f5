// `conceptlab explain global|local|curve`: explanations of a concept bottleneck over activations,
// and intervention curves (a metric against the number of latents edited, per ranking rule).
#include <algorithm>
#include <optional>

#include <spdlog/spdlog.h>

#include "cbm/dataset.h"
#include "cbm/protocol.h"
#include "core/activations.h"
#include "core/csv.h"
#include "core/error.h"
#include "core/linear_model.h"
#include "core/embeddings.h"
#include "core/parse.h"
#include "core/sae_weights.h"
#include "explain/contrib.h"
#include "explain/data.h"
#include "explain/experiment.h"
#include "explain/heatmap.h"
#include "explain/naming.h"
#include "explain/plot.h"
#include "explain/rules.h"
#include "tools/commands/explain_common.h"
#include "tools/params_cli.h"

namespace cl::cli {

namespace {

struct ModelArgs {
  std::string cbm, activations, labels, label_col, id_col = kDefaultIdCol, names;
  bool json = false;
};

void add_model_options(CLI::App* s, ModelArgs& a, bool labels_required) {
  s->add_option("--cbm", a.cbm, "conceptlab.linear model over the activations")->required();
  s->add_option("--activations", a.activations, "conceptlab.activations file")->required();
  auto* l = add_labels_flag(s, a.labels);
  auto* c = add_label_col_flag(s, a.label_col);
  if (labels_required) l->required(), c->required();
  add_id_col_flag(s, a.id_col);
  s->add_option("--names", a.names, "latent names (default: A.names.h5 beside the activations when present)");
  s->add_flag("--json", a.json, "print one JSON object");
}

cbm::LogRegFit load_cbm(const std::string& path, const CsrMatrix& acts, const std::string& acts_path,
                        std::vector<std::string>* classes) {
  const LinearModel lm = read_linear(path);
  const auto f = cbm::from_linear_model(lm);
  if (f.n_features != acts.n_cols)
    throw_input("{}: {} latents; model {} expects {}", acts_path, acts.n_cols, path, f.n_features);
  if (classes) *classes = lm.classes;
  return f;
}

}  // namespace

Runner setup_explain_global(CLI::App* s) {
  auto a = std::make_shared<ModelArgs>();
  auto top = std::make_shared<int>(10);
  auto plot = std::make_shared<std::string>();
  auto by = std::make_shared<std::string>("weight");
  add_model_options(s, *a, false);
  s->add_option("--top", *top, "latents per class");
  s->add_option("--plot", *plot, "bar chart per class (PNG)");
  s->add_option("--plot-by", *by, "what the chart shows: weight | contribution");
  return [a, top, plot, by](const Context&) -> int {
    if (*top < 1) throw_usage("--top {}: expected >= 1", *top);
    if (*by != "weight" && *by != "contribution") throw_usage("--plot-by '{}': expected weight or contribution", *by);
    if (a->labels.empty() != a->label_col.empty()) throw_usage("--labels and --label-col go together");
    const cbm::Features f = cbm::read_features(a->activations);
    std::vector<std::string> classes;
    const auto m = load_cbm(a->cbm, f.X, a->activations, &classes);
    const LatentNames names = load_names(a->names, a->activations);
    std::vector<explain::ClassGlobal> g;
    if (!a->labels.empty()) {
      cbm::LoadParams lp{a->activations, a->labels, a->label_col, a->id_col, "", true};
      const auto d = cbm::load_dataset(lp, f, &classes);
      g = explain::global_explanations(m, classes, d.X, d.y, *top);
    } else {
      g = explain::global_explanations(m, classes, f.X, {}, *top);
    }
    nlohmann::json j = explain::to_json(g);
    for (auto& c : j)
      for (const char* key : {"by_weight", "by_contribution"})
        for (auto& t : c[key])
          if (const auto* n = names.find(t["latent"].get<int64_t>())) t["name"] = n->name;
    if (!plot->empty()) {
      std::vector<explain::BarPanel> panels;
      for (const auto& c : g) {
        explain::BarPanel p{fmt::format("class {}: top {} latents by {}{}", c.class_name, *top, *by,
                                        *by == "contribution" ? fmt::format(" (mean over {} images)", c.n_images) : ""),
                            {}};
        for (const auto& t : *by == "weight" ? c.by_weight : c.by_contribution)
          p.bars.push_back({"latent " + latent_label(names, t.latent), *by == "weight" ? t.weight : t.mean_contribution});
        panels.push_back(std::move(p));
      }
      explain::write_bar_charts(*plot, panels, *by == "weight" ? "weight" : "weight x mean activation",
                                {a->activations, a->cbm});
    }
    if (a->json) {
      print_json({{"classes", j}, {"plot", *plot}});
      return 0;
    }
    for (const auto& c : j) {
      fmt::print("class {} ({} images)\n", c["class"].get<std::string>(), c["n_images"].get<int64_t>());
      for (const auto& t : c["by_weight"])
        fmt::print("  latent {:<8} weight {:+.4f}  mean contribution {:+.4f}  rank {}{}\n", t["latent"].get<int64_t>(),
                   t["weight"].get<double>(), t["mean_contribution"].get<double>(), t["importance_rank"].get<int64_t>(),
                   t.contains("name") ? "  " + t["name"].get<std::string>() : "");
    }
    return 0;
  };
}

Runner setup_explain_local(CLI::App* s) {
  auto a = std::make_shared<ModelArgs>();
  auto id = std::make_shared<std::string>();
  auto top = std::make_shared<int>(10);
  add_model_options(s, *a, false);
  s->add_option("--id", *id, "image id")->required();
  s->add_option("--top", *top, "contributions listed per class (the JSON lists them all)");
  return [a, id, top](const Context&) -> int {
    const cbm::Features f = cbm::read_features(a->activations);
    std::vector<std::string> classes;
    const auto m = load_cbm(a->cbm, f.X, a->activations, &classes);
    const auto it = std::find(f.ids.begin(), f.ids.end(), *id);
    if (it == f.ids.end()) throw_input("{}: image id '{}' not found", a->activations, *id);
    const auto l = explain::local_explanation(m, classes, f.X, it - f.ids.begin());
    const LatentNames names = load_names(a->names, a->activations);
    nlohmann::json j = explain::to_json(l);
    // With patch activations beside the activations: where on the image each latent fires.
    const std::string patch_path = explain::patch_activations_for(a->activations);
    std::optional<explain::PatchMaps> maps;
    if (!patch_path.empty()) maps.emplace(patch_path);
    auto where = [&](int64_t latent) -> std::string {
      if (!maps) return "";
      const explain::PatchHit h = maps->peak(*id, latent);
      return h.patch < 0 ? "" : explain::describe_patch(maps->geometry(), h.image, h.patch);
    };
    for (auto& c : j)
      for (auto& t : c["contributions"]) {
        if (const auto* n = names.find(t["latent"].get<int64_t>())) t["name"] = n->name;
        if (const std::string w = where(t["latent"].get<int64_t>()); !w.empty()) t["where"] = w;
      }
    if (a->json) {
      print_json({{"id", *id}, {"classes", j}});
      return 0;
    }
    for (const auto& c : l) {
      fmt::print("class {}: p {:.4f}, logit {:+.4f} = bias {:+.4f} + {} latent terms\n", c.class_name, c.probability,
                 c.logit, c.bias, c.terms.size());
      for (size_t k = 0; k < c.terms.size() && static_cast<int>(k) < *top; ++k)
        fmt::print("  latent {:<14} {:+.4f} = activation {:.4f} x weight {:+.4f}{}\n",
                   latent_label(names, c.terms[k].latent), c.terms[k].mean_contribution, c.terms[k].mean_activation,
                   c.terms[k].weight, maps ? "  fires most at " + where(c.terms[k].latent) : "");
    }
    return 0;
  };
}

Runner setup_explain_curve(CLI::App* s) {
  struct Args {
    ModelArgs m;
    std::string vocab, sae, embeddings, split_col, eval_split = "test", subgroup_col, csv, plot;
  };
  auto a = std::make_shared<Args>();
  auto pc = std::make_shared<ParamsCli<explain::CurveParams>>(s, "params JSON (configs/explain-curve.json)");
  add_model_options(s, a->m, true);
  pc->option("--by", &explain::CurveParams::by, "ranking rules, a comma list of: " + explain::rule_choices())->delimiter(',');
  pc->option("--concept-col", &explain::CurveParams::concept_col, "annotation / direction: the 0/1 concept column of --labels");
  pc->option("--concept", &explain::CurveParams::concept_name, "named: the latent name; direction with --vocab: the entry");
  pc->option("--max-k", &explain::CurveParams::max_k, "latents edited at most");
  pc->option("--seeds", &explain::CurveParams::seeds, "random rule: orders averaged");
  pc->option("--seed", &explain::CurveParams::seed, "random rule: order i uses seed + i");
  pc->option("--op", &explain::CurveParams::op, "edit: zero | mean");
  s->add_option("--vocab", a->vocab, "direction: concept vectors from a vocabulary (else from --concept-col)");
  s->add_option("--sae", a->sae, "direction: the SAE whose decoder rows are compared");
  s->add_option("--embeddings", a->embeddings, "direction without --vocab: embeddings for the concept vector");
  add_split_options(s, a->split_col, a->eval_split, a->subgroup_col);
  s->add_option("--csv", a->csv, "write the curves as CSV");
  s->add_option("--plot", a->plot, "plot AUROC against k, one line per rule (PNG)");
  return [a, pc](const Context&) -> int {
    const auto p = pc->resolve();
    explain::validate(p, "explain curve");
    const cbm::Features f = cbm::read_features(a->m.activations);
    std::vector<std::string> classes;
    const auto model = load_cbm(a->m.cbm, f.X, a->m.activations, &classes);
    const cbm::LoadParams lp{a->m.activations, a->m.labels, a->m.label_col, a->m.id_col, a->split_col, true};
    const auto L = explain::load_labelled(f, lp, a->subgroup_col, a->eval_split, &classes);
    const LatentNames names = load_names(a->m.names, a->m.activations);
    explain::RuleInputs in{&L.data.X, &L.data.ids, &model, &names, a->m.labels, a->m.id_col, a->vocab, a->sae, a->embeddings};
    const auto all = explain::intervention_curves(L.data.X, model, L.eval, in, p);
    if (!a->csv.empty()) write_csv(a->csv, explain::curve_table(all), {a->m.activations, a->m.cbm, a->m.labels});
    if (!a->plot.empty())
      explain::write_line_chart(a->plot, fmt::format("{}: AUROC on {} images as latents are edited ({})", a->m.label_col,
                                                     L.eval.rows.size(), p.op),
                                "latents edited (k)", "AUROC", explain::curve_series(all), {a->m.activations, a->m.cbm});
    if (a->m.json) {
      print_json({{"curves", explain::to_json(all)}, {"csv", a->csv}, {"plot", a->plot}});
      return 0;
    }
    for (const auto& pt : all)
      if (pt.k == 0 || pt.k == p.max_k || pt.k == std::min(p.max_k, 5))
        fmt::print("{:<28} k {:<4} AUROC {:.4f}  accuracy {:.4f}  worst-group {}\n", pt.rule, pt.k, pt.auroc,
                   pt.accuracy, std::isnan(pt.worst_group_accuracy) ? "-" : fmt::format("{:.4f}", pt.worst_group_accuracy));
    return 0;
  };
}

}  // namespace cl::cli
