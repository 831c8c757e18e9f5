// `conceptlab intervene`: edit latents (zero / scale / clamp / mean; from flags, a JSON edit file
// or a rule) and report what the classifier does before and after, with bootstrap intervals,
// subgroups, a random-latent control, an optional refit and the same edit in embedding space.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "cbm/dataset.h"
#include "core/csv.h"
#include "cbm/protocol.h"
#include "core/atomic_file.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/linear_model.h"
#include "core/params.h"
#include "core/parse.h"
#include "core/sae_weights.h"
#include "explain/contrib.h"
#include "explain/data.h"
#include "explain/experiment.h"
#include "explain/naming.h"
#include "explain/rules.h"
#include "sae/sae.h"
#include "tools/commands/explain_common.h"
#include "tools/params_cli.h"

namespace cl::cli {

namespace {

struct Args {
  std::string cbm, activations, labels, label_col, id_col = kDefaultIdCol, names, split_col, eval_split = "test";
  std::string subgroup_col, zero, mean, edits_file, vocab;
  std::vector<std::string> scale, clamp;
  explain::RuleEdits rule;  // --concept, --by, --top-n, --concept-col: defaults from the struct
  std::string sae, probe, embeddings, out, device = "cpu";
  bool json = false;
};

// "i=v" pairs.
std::vector<std::pair<int64_t, double>> parse_pairs(const std::string& flag, const std::vector<std::string>& items) {
  std::vector<std::pair<int64_t, double>> out;
  for (const auto& it : items) {
    const size_t eq = it.find('=');
    double j, v;
    if (eq == std::string::npos || !parse_number(it.substr(0, eq), j) || j < 0 || j != std::floor(j) ||
        !parse_number(it.substr(eq + 1), v) || !std::isfinite(v))
      throw_usage("{} '{}': expected LATENT=VALUE pairs like 12=0.5", flag, it);
    out.emplace_back(static_cast<int64_t>(j), v);
  }
  return out;
}

void print_scored(const char* name, const explain::Scored& s) {
  fmt::print("{:<26} AUROC {:.4f}{}  accuracy {:.4f}  balanced {:.4f}  macro-F1 {:.4f}{}\n", name, s.metrics.auroc,
             s.has_ci ? fmt::format(" [{:.4f}, {:.4f}]", s.ci.auroc.lo, s.ci.auroc.hi) : "", s.metrics.accuracy,
             s.metrics.balanced_accuracy, s.metrics.macro_f1,
             std::isnan(s.worst_group_accuracy) ? "" : fmt::format("  worst group {:.4f}", s.worst_group_accuracy));
  for (const auto& g : s.subgroup_auroc)
    fmt::print("{:<26}   {} (n {}): AUROC {:.4f}\n", "", g.subgroup, g.n, g.auroc);
}

}  // namespace

Command command_intervene() {
  return {"intervene", "edit latents and re-evaluate the classifier, with intervals, subgroups and a random control",
          [](CLI::App& s) -> Runner {
            auto a = std::make_shared<Args>();
            auto pc = std::make_shared<ParamsCli<explain::InterveneParams>>(&s, "params JSON (configs/intervene.json)");
            s.add_option("--cbm", a->cbm, "conceptlab.linear model over the activations")->required();
            s.add_option("--activations", a->activations, "conceptlab.activations file")->required();
            add_labels_flag(&s, a->labels)->required();
            add_label_col_flag(&s, a->label_col)->required();
            add_id_col_flag(&s, a->id_col);
            s.add_option("--zero", a->zero, "zero these latents (comma list)");
            s.add_option("--mean", a->mean, "set these latents to their mean activation (comma list)");
            s.add_option("--scale", a->scale, "scale latents: LATENT=FACTOR,...")->delimiter(',');
            s.add_option("--clamp", a->clamp, "hold latents at a value on every image: LATENT=VALUE,...")->delimiter(',');
            s.add_option("--edits", a->edits_file, "JSON edit file {\"edits\": [{\"latent\": 3, \"op\": \"scale\", \"value\": 0.5}]}");
            s.add_option("--concept", a->rule.concept_name, "rule: edit the latents of this concept");
            s.add_option("--top-n", a->rule.top_n, "rule: how many latents")->capture_default_str();
            s.add_option("--by", a->rule.by, "rule: " + explain::rule_choices() + " (see docs/explain.md)")->capture_default_str();
            s.add_option("--rule-op", a->rule.op, "rule: zero | mean")->capture_default_str();
            s.add_option("--concept-col", a->rule.concept_col, "rule: the 0/1 column of the concept (default: --concept)");
            s.add_option("--vocab", a->vocab, "rule --by direction: concept vectors from a vocabulary");
            s.add_option("--names", a->names, "rule --by named: latent names (default: A.names.h5)");
            add_split_options(&s, a->split_col, a->eval_split, a->subgroup_col);
            pc->option("--bootstrap", &explain::InterveneParams::bootstrap, "bootstrap draws for 95% intervals");
            pc->option("--random-control", &explain::InterveneParams::random_control, "random-latent control seeds (0: off)");
            pc->option("--seed", &explain::InterveneParams::seed, "seed of the bootstrap and the control");
            pc->flag("--refit", &explain::InterveneParams::refit, "also edit the training rows and refit (needs --split-col)");
            s.add_option("--sae", a->sae, "embedding space (with --probe, --embeddings) or --by direction: the SAE");
            s.add_option("--probe", a->probe, "embedding space: a linear model on embeddings");
            s.add_option("--embeddings", a->embeddings, "embedding space: the images' embeddings");
            s.add_option("--device", a->device, "embedding space: device of the SAE");
            s.add_option("--out", a->out, "write the report (JSON) here");
            s.add_flag("--json", a->json, "print the report as one JSON object");
            return [a, pc](const Context& ctx) -> int {
              const auto p = pc->resolve();
              explain::validate(p);
              const cbm::Features f = cbm::read_features(a->activations);
              const LinearModel lm = read_linear(a->cbm);
              const auto model = cbm::from_linear_model(lm);
              if (model.n_features != f.X.n_cols)
                throw_input("{}: {} latents; model {} expects {}", a->activations, f.X.n_cols, a->cbm, model.n_features);
              const cbm::LoadParams lp{a->activations, a->labels, a->label_col, a->id_col, a->split_col, true};
              const auto L = explain::load_labelled(f, lp, a->subgroup_col, a->eval_split, &lm.classes);
              std::vector<explain::LatentEdit> edits;
              if (!a->zero.empty())
                for (auto j : parse_latent_list("--zero", a->zero)) edits.push_back({j, explain::EditOp::zero, 0});
              if (!a->mean.empty())
                for (auto j : parse_latent_list("--mean", a->mean)) edits.push_back({j, explain::EditOp::mean, 0});
              for (auto [j, v] : parse_pairs("--scale", a->scale)) edits.push_back({j, explain::EditOp::scale, v});
              for (auto [j, v] : parse_pairs("--clamp", a->clamp)) edits.push_back({j, explain::EditOp::clamp, v});
              if (!a->edits_file.empty())
                for (const auto& e : explain::read_edits(a->edits_file, f.X.n_cols)) edits.push_back(e);
              if (!a->rule.concept_name.empty() || a->rule.by != explain::RuleEdits{}.by) {
                const LatentNames names = load_names(a->names, a->activations);
                const explain::RuleInputs in{&L.data.X, &L.data.ids, &model, &names, a->labels, a->id_col,
                                             a->vocab,  a->sae,       a->embeddings};
                const auto picked = explain::rule_edits(a->rule, in);
                if (picked.empty())
                  throw_input("--by {} found no latent for '{}'{}", a->rule.by, a->rule.concept_name,
                              a->rule.by == "named" ? " (no latent is named so: run `explain match` or pass --names)" : "");
                edits.insert(edits.end(), picked.begin(), picked.end());
              }
              if (edits.empty()) throw_usage("intervene: no edit (--zero, --scale, --clamp, --mean, --edits or --concept)");
              for (const auto& e : edits)
                if (e.latent >= f.X.n_cols) throw_input("{}: latent {}, the file has {} latents", a->activations, e.latent, f.X.n_cols);
              cbm::LogRegParams refit;
              if (lm.config.contains("model")) refit = params_from_json<cbm::LogRegParams>(lm.config["model"], a->cbm);
              auto r = explain::intervene(L.data.X, model, edits, L.eval, p, L.train_rows, L.train_y, refit, ctx.progress);
              if (!a->probe.empty() || !a->embeddings.empty()) {
                if (a->sae.empty() || a->probe.empty() || a->embeddings.empty())
                  throw_usage("embedding space needs --sae, --probe and --embeddings together");
                const sae::Model sm = sae::Model::load(a->sae, pick_device(a->device));
                const auto e = explain::dense_embedding_rows_for_ids(a->embeddings, L.data.ids);
                const auto probe = cbm::from_linear_model(read_linear(a->probe));
                explain::intervene_embeddings(r, e.x_nd.data(), e.dim, L.data.X, sm, probe, L.eval, p);
              }
              nlohmann::json j = explain::to_json(r);
              j["n_eval"] = L.eval.rows.size();
              j["label_col"] = a->label_col;
              if (!a->out.empty()) write_file_atomic(a->out, j.dump(2) + "\n", {a->activations, a->cbm, a->labels, a->edits_file});
              if (a->json) {
                print_json(j);
                return 0;
              }
              fmt::print("{} edits on {} images ({} = {})\n", edits.size(), L.eval.rows.size(), a->label_col,
                         fmt::join(lm.classes, " | "));
              print_scored("before", r.before);
              print_scored("after", r.after);
              fmt::print("{:<26} {} predictions flipped\n", "", r.n_flipped);
              if (r.control)
                fmt::print("{:<26} AUROC {:.4f} [{:.4f}, {:.4f}] over {} seeds ({} random latents of {} the model uses)\n",
                           "random control", r.control->auroc_summary.mean, r.control->auroc_summary.lo,
                           r.control->auroc_summary.hi, r.control->seeds, r.control->n_latents, r.control->n_candidates);
              if (r.control)
                for (size_t g = 0; g < r.control->subgroup_auroc.size(); ++g)
                  fmt::print("{:<26}   {}: AUROC {:.4f} [{:.4f}, {:.4f}]\n", "", r.after.subgroup_auroc[g].subgroup,
                             r.control->subgroup_auroc[g].mean, r.control->subgroup_auroc[g].lo,
                             r.control->subgroup_auroc[g].hi);
              if (r.refit) print_scored("refit on edited train", *r.refit);
              if (r.probe_before) print_scored("probe on embeddings", *r.probe_before), print_scored("probe, edited embeddings", *r.probe_after);
              return 0;
            };
          }};
}

}  // namespace cl::cli
