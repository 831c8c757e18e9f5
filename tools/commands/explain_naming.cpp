// `conceptlab explain match` (names from annotation columns) and `explain name` (names from the
// direction of decoder rows): options -> params -> one cl::explain call -> report and names file.
#include <cmath>

#include <spdlog/spdlog.h>

#include "cbm/dataset.h"
#include "core/csv.h"
#include "cbm/protocol.h"
#include "core/activations.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/linear_model.h"
#include "core/sae_weights.h"
#include "core/vocab.h"
#include "explain/contrib.h"
#include "explain/data.h"
#include "explain/match.h"
#include "explain/naming.h"
#include "tools/commands/explain_common.h"
#include "tools/params_cli.h"

namespace cl::cli {

namespace {

CsrMatrix embeddings_for(const std::string& path, const std::vector<std::string>& ids, int64_t* dim = nullptr) {
  CsrMatrix x = explain::embedding_rows_for_ids(path, ids);
  if (dim) *dim = x.n_cols;
  return x;
}

}  // namespace

Runner setup_explain_match(CLI::App* s) {
  struct Args {
    std::string activations, labels, id_col = kDefaultIdCol, embeddings, names_out;
    std::vector<std::string> columns;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto pc = std::make_shared<ParamsCli<explain::MatchParams>>(s, "match params JSON (configs/explain-match.json)");
  s->add_option("--activations", a->activations, "conceptlab.activations file")->required();
  add_labels_flag(s, a->labels)->required();
  add_id_col_flag(s, a->id_col);
  s->add_option("--columns", a->columns, "annotation columns (comma list)")->required()->delimiter(',');
  s->add_option("--embeddings", a->embeddings, "embeddings of the same images: adds a linear probe per concept");
  s->add_option("--names-out", a->names_out, "names file (default: A.names.h5 beside the activations)");
  auto& c = *pc;
  using P = explain::MatchParams;
  c.option("--max-latents", &P::max_latents, "largest latent set per concept (L1 path)");
  c.option("--top", &P::top, "best latents listed per concept");
  c.option("--named-auroc", &P::named_auroc, "a latent is named after its best concept at this AUROC");
  c.option("--min-positives", &P::min_positives, "concepts with fewer annotated positives name no latent");
  c.option("--splits", &P::splits, "held-out splits for the set and probe AUROCs");
  c.option("--seed", &P::seed, "split seed");
  c.option("--threads", &P::threads, "threads (0 = all cores)");
  s->add_flag("--json", a->json, "print one JSON object");
  return [a, pc](const Context& ctx) -> int {
    const auto p = pc->resolve();
    explain::validate(p);
    const Activations acts = read_activations(a->activations);
    const auto ann = explain::read_annotations(a->labels, a->id_col, a->columns, acts.ids);
    spdlog::info("explain match: {} of {} images annotated in {}; {} columns", ann.n_joined, acts.ids.size(), a->labels,
                 ann.names.size());
    const CsrMatrix emb = a->embeddings.empty() ? CsrMatrix{} : embeddings_for(a->embeddings, acts.ids);
    const auto r = explain::match_concepts(acts.acts, ann.names, ann.labels, a->embeddings.empty() ? nullptr : &emb, p,
                                           ctx.progress);
    LatentNames names = load_names("", a->activations);
    for (const auto& b : r.per_latent)
      if (b.named && !(names.find(b.latent) && names.find(b.latent)->origin == "user"))
        names.set({b.latent, r.concepts[static_cast<size_t>(b.concept_index)].name, "annotation", b.auroc});
    names.config["match"] = {{"labels", a->labels}, {"columns", a->columns}, {"params", p}};
    const std::string names_path = a->names_out.empty() ? default_names_path(a->activations) : a->names_out;
    write_latent_names(names_path, names, {a->activations, a->labels});
    nlohmann::json j = explain::to_json(r);
    j["names"] = names_path;
    if (a->json) {
      print_json(j);
      return 0;
    }
    fmt::print("{:<24} {:>6} {:>8} {:>7} {:>7}  {:<22} {:>8} {:>8}\n", "concept", "pos", "latent", "AUROC", "margin",
               "K-latent set", "set AUC", "probe");
    for (const auto& cs : r.concepts) {
      const auto& b = cs.best.empty() ? explain::LatentScore{} : cs.best[0];
      fmt::print("{:<24} {:>6} {:>8} {:>7.3f} {:>7.3f}  {:<22} {:>8.3f} {:>8.3f}\n", cs.name, cs.n_pos, b.latent, b.auroc,
                 cs.margin, nlohmann::json(cs.latent_set).dump(), cs.set_auroc, cs.probe_auroc);
    }
    const auto& cv = r.coverage;
    fmt::print("latents: {} alive of {}, {} named (AUROC >= {}); concepts: {} with a single latent >= 0.8, {} >= 0.9, "
               "{} of {} sets within {} of the probe; names -> {}\n",
               cv.alive, cv.n_latents, cv.named, p.named_auroc, cv.single_above_08, cv.single_above_09,
               cv.sets_near_probe, cv.with_probe, p.probe_margin, names_path);
    return 0;
  };
}

Runner setup_explain_name(CLI::App* s) {
  struct Args {
    std::string sae, vocab, embeddings, labels, id_col = kDefaultIdCol, cbm, activations, names_out;
    std::vector<std::string> columns;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto pc = std::make_shared<ParamsCli<explain::NameParams>>(s, "name params JSON (configs/explain-name.json)");
  s->add_option("--sae", a->sae, "SAE whose decoder rows are named")->required();
  s->add_option("--vocab", a->vocab, "conceptlab.vocab: text embeddings of concept phrases");
  s->add_option("--embeddings", a->embeddings, "embeddings: concept vectors from annotations (with --labels)");
  add_labels_flag(s, a->labels);  // with --embeddings
  add_id_col_flag(s, a->id_col);
  s->add_option("--columns", a->columns, "annotation columns (comma list)")->delimiter(',');
  s->add_option("--cbm", a->cbm, "only latents with a non-zero weight in this model; reports their importance rank");
  s->add_option("--activations", a->activations, "activations: compares with the annotation-best latents, writes names");
  s->add_option("--names-out", a->names_out, "names file (default: A.names.h5 beside --activations)");
  pc->option("--min-similarity", &explain::NameParams::min_similarity, "cosine below which a concept stays unassigned");
  pc->option("--nearest", &explain::NameParams::nearest, "nearest latents listed per concept");
  s->add_flag("--json", a->json, "print one JSON object");
  return [a, pc](const Context&) -> int {
    const auto p = pc->resolve();
    explain::validate(p);
    if (a->vocab.empty() == a->embeddings.empty())
      throw_usage("explain name: give --vocab, or --embeddings with --labels and --columns");
    const SaeWeights w = read_sae(a->sae);
    std::vector<std::string> concepts;
    std::vector<float> vectors;
    int64_t dim = 0;
    std::vector<explain::ConceptLabels> labels;
    std::vector<std::string> ids;
    if (!a->vocab.empty()) {
      const Vocab v = read_vocab(a->vocab);
      concepts = v.names, vectors = v.embeddings, dim = v.dim;
    } else {
      if (a->labels.empty() || a->columns.empty()) throw_usage("--embeddings needs --labels and --columns");
      ids = EmbeddingsReader(a->embeddings).ids();
      const auto ann = explain::read_annotations(a->labels, a->id_col, a->columns, ids);
      const CsrMatrix emb = embeddings_for(a->embeddings, ids, &dim);
      concepts = ann.names, labels = ann.labels;
      vectors = explain::concept_vectors(emb, labels);
    }
    if (dim != w.d_in) throw_input("{}: concept vectors of dim {}, SAE {} has dim {}", a->vocab.empty() ? a->embeddings : a->vocab, dim, a->sae, w.d_in);
    std::vector<int64_t> candidates, importance;
    if (!a->cbm.empty()) {
      const auto fit = cbm::from_linear_model(read_linear(a->cbm));
      if (fit.n_features != w.n_latents) throw_input("{}: {} features, SAE {} has {} latents", a->cbm, fit.n_features, a->sae, w.n_latents);
      importance = explain::importance_ranks(fit);
      for (int64_t j = 0; j < w.n_latents; ++j)
        if (importance[static_cast<size_t>(j)] > 0) candidates.push_back(j);
      if (candidates.empty()) throw_input("{}: every weight is zero; no latent to name", a->cbm);
    }
    std::vector<int64_t> annotation_best;
    if (!a->activations.empty() && !labels.empty()) {
      const Activations acts = read_activations(a->activations);
      const auto ann = explain::read_annotations(a->labels, a->id_col, a->columns, acts.ids);
      for (const auto& m : explain::best_latents(explain::latent_aurocs(to_csc(acts.acts), ann.labels), ann.names))
        annotation_best.push_back(m.latent);
    }
    const auto r = explain::name_by_direction(w.W_dec, w.n_latents, w.d_in, concepts, vectors, candidates, importance,
                                              annotation_best, p);
    nlohmann::json j = explain::to_json(r);
    if (!a->activations.empty()) {
      LatentNames names = load_names("", a->activations);
      for (const auto& m : r.matches)
        if (m.latent >= 0 && !(names.find(m.latent) && names.find(m.latent)->origin != "direction"))
          names.set({m.latent, m.concept_name, "direction", m.cosine});
      names.config["name"] = {{"sae", a->sae}, {"source", a->vocab.empty() ? a->embeddings : a->vocab}, {"params", p}};
      const std::string path = a->names_out.empty() ? default_names_path(a->activations) : a->names_out;
      write_latent_names(path, names, {a->activations, a->sae});
      j["names"] = path;
    }
    if (a->json) {
      print_json(j);
      return 0;
    }
    for (const auto& m : r.matches)
      fmt::print("{:<28} {:<12} cosine {:.3f}{}{}\n", m.concept_name,
                 m.latent >= 0 ? "latent " + std::to_string(m.latent) : "unassigned", m.cosine,
                 m.importance_rank > 0 ? fmt::format("  CBM rank {}", m.importance_rank) : "",
                 m.annotation_latent >= 0 ? fmt::format("  annotation-best {} ({})", m.annotation_latent,
                                                        m.agrees ? "agrees" : "differs")
                                          : "");
    return 0;
  };
}

}  // namespace cl::cli
