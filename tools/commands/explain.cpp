// `conceptlab explain stats|retrieve|match|name|global|local|curve`: the subcommand table, and the
// two that read the inverted index (stats builds it, retrieve reads it).
#include <filesystem>
#include <optional>

#include <spdlog/spdlog.h>

#include "core/activations.h"
#include "core/error.h"
#include "explain/heatmap.h"
#include "explain/plot.h"
#include "explain/stats.h"
#include "tools/commands/explain_common.h"
#include "tools/params_cli.h"

namespace cl::cli {

namespace {

nlohmann::json index_summary(const LatentIndex& x, const std::string& path) {
  int64_t alive = 0;
  std::vector<std::pair<double, int64_t>> rate;
  for (int64_t j = 0; j < x.n_latents; ++j) {
    alive += x.fire_count[static_cast<size_t>(j)] > 0;
    rate.emplace_back(x.firing_rate(j), j);
  }
  std::stable_sort(rate.begin(), rate.end(), [](auto& a, auto& b) { return a.first > b.first; });
  nlohmann::json top = nlohmann::json::array();
  for (size_t k = 0; k < std::min<size_t>(10, rate.size()); ++k) {
    const int64_t j = rate[k].second;
    top.push_back({{"latent", j}, {"firing_rate", rate[k].first}, {"mean_active", x.mean_active[static_cast<size_t>(j)]},
                   {"max", x.max[static_cast<size_t>(j)]}});
  }
  return {{"index", path},         {"n_rows", x.n_rows},         {"n_latents", x.n_latents},
          {"alive", alive},        {"dead", x.n_latents - alive}, {"nnz", static_cast<int64_t>(x.rows.size())},
          {"most_frequent", top}};
}

// The index beside the activations when it is up to date, else built in memory.
LatentIndex open_index(const std::string& acts_path, const std::string& index_path, const CsrMatrix* acts) {
  const std::string p = index_path.empty() ? default_index_path(acts_path) : index_path;
  if (std::filesystem::exists(p)) {
    LatentIndex x = read_latent_index(p);
    const ActivationsReader r(acts_path);
    if (x.n_rows != r.rows() || x.n_latents != r.n_latents() || static_cast<int64_t>(x.rows.size()) != r.nnz())
      throw_input("{}: index of {} rows x {} latents ({} non-zeros) does not match {} ({} x {}, {}); rebuild it with "
                  "`conceptlab explain stats`", p, x.n_rows, x.n_latents, x.rows.size(), acts_path, r.rows(),
                  r.n_latents(), r.nnz());
    return x;
  }
  if (!index_path.empty()) throw_input("{}: index not found", index_path);
  spdlog::info("{}: no index beside the activations; building it in memory", p);
  return explain::build_index(acts ? *acts : read_activations(acts_path).acts);
}

}  // namespace

Runner setup_explain_stats(CLI::App* s) {
  struct Args {
    std::string activations, out;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto pc = std::make_shared<ParamsCli<explain::StatsParams>>(s, "stats params JSON (configs/explain-stats.json)");
  s->add_option("--activations", a->activations, "conceptlab.activations file")->required();
  s->add_option("--out", a->out, "index file (default: beside the activations, A.index.h5)");
  pc->option("--bins", &explain::StatsParams::n_bins, "log-spaced histogram bins");
  pc->option("--quantiles", &explain::StatsParams::quantile_levels, "quantile levels of the non-zero activations")
      ->delimiter(',');
  pc->option("--threads", &explain::StatsParams::threads, "threads (0 = all cores)");
  s->add_flag("--json", a->json, "print a summary as one JSON object");
  return [a, pc](const Context& ctx) -> int {
    const auto p = pc->resolve();
    explain::validate(p);
    const std::string out = a->out.empty() ? default_index_path(a->activations) : a->out;
    const Activations acts = read_activations(a->activations);
    LatentIndex x = explain::build_index(acts.acts, p, ctx.progress);
    x.config = {{"activations", a->activations}, {"n_rows", acts.acts.n_rows}, {"n_latents", acts.acts.n_cols},
                {"nnz", acts.acts.nnz()}, {"params", p}};
    write_latent_index(out, x, {a->activations});
    const auto j = index_summary(x, out);
    if (a->json)
      print_json(j);
    else
      fmt::print("wrote {}: {} images x {} latents, {} alive ({} dead), {} non-zeros\n", out, x.n_rows, x.n_latents,
                 j["alive"].get<int64_t>(), j["dead"].get<int64_t>(), j["nnz"].get<int64_t>());
    return 0;
  };
}

Runner setup_explain_retrieve(CLI::App* s) {
  struct Args {
    std::string activations, index, names, image_id, concept_name, montage, image_root, patch_acts;
    int64_t latent = -1, top = 20;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  s->add_option("--activations", a->activations, "conceptlab.activations file")->required();
  auto* ol = s->add_option("--latent", a->latent, "top images of this latent");
  auto* oc = s->add_option("--concept", a->concept_name, "top images of the latents named this (names file)");
  auto* oi = s->add_option("--image", a->image_id, "the latents most active on this image id");
  ol->excludes(oc)->excludes(oi);
  oc->excludes(oi);
  s->add_option("--top", a->top, "how many results");
  s->add_option("--index", a->index, "index file (default: A.index.h5 beside the activations, else built)");
  s->add_option("--names", a->names, "latent names (default: A.names.h5 beside the activations when present)");
  s->add_option("--montage", a->montage, "draw the results as a labelled thumbnail grid (PNG)");
  s->add_option("--image-root", a->image_root, "folder the ids are relative to (default: from the embeddings' config)");
  s->add_option("--patch-activations", a->patch_acts,
                "montage of a latent: heatmap overlays from these patch activations (default: those encoded with A)");
  s->add_flag("--json", a->json, "print one JSON object");
  return [a](const Context&) -> int {
    if ((a->latent >= 0) + !a->concept_name.empty() + !a->image_id.empty() != 1)
      throw_usage("explain retrieve: give one of --latent, --concept, --image");
    if (a->top < 1) throw_usage("--top {}: expected >= 1", a->top);
    const Activations acts = read_activations(a->activations);
    const LatentNames names = load_names(a->names, a->activations);
    nlohmann::json out = {{"activations", a->activations}};
    std::vector<explain::Tile> tiles;
    std::vector<explain::HeatmapTile> heat_tiles;  // a latent's montage with patch activations
    const std::string root = a->montage.empty() ? "" : image_root_for(a->activations, a->image_root);
    std::string title;
    if (!a->image_id.empty()) {
      const auto it = std::find(acts.ids.begin(), acts.ids.end(), a->image_id);
      if (it == acts.ids.end()) throw_input("{}: image id '{}' not found", a->activations, a->image_id);
      const int64_t row = it - acts.ids.begin();
      const auto hits = explain::top_latents(acts.acts, row, a->top);
      const LatentIndex x = a->montage.empty() ? LatentIndex{} : open_index(a->activations, a->index, &acts.acts);
      nlohmann::json list = nlohmann::json::array();
      if (!a->montage.empty()) tiles.push_back({load_image(root, a->image_id), "query\n" + a->image_id});
      for (const auto& h : hits) {
        const LatentName* n = names.find(h.row);
        list.push_back({{"latent", h.row}, {"activation", h.value}, {"name", n ? nlohmann::json(n->name) : nlohmann::json()}});
        if (!a->montage.empty()) {
          // The latent's strongest image other than the query itself.
          std::string id;
          for (const auto& b : explain::top_images(x, h.row, 2))
            if (b.row != row && id.empty()) id = acts.ids[static_cast<size_t>(b.row)];
          tiles.push_back({load_image(root, id), fmt::format("latent {} {:.3g}\n{}", latent_label(names, h.row), h.value,
                                                             id.empty() ? "(fires on no other image)" : "e.g. " + id)});
        }
      }
      out["image"] = a->image_id;
      out["latents"] = list;
      title = fmt::format("image {}: its most active latents, each shown by its strongest other image", a->image_id);
      if (!a->json)
        for (const auto& l : list)
          fmt::print("latent {:<8} {:.4g}  {}\n", l["latent"].get<int64_t>(), l["activation"].get<double>(),
                     l["name"].is_null() ? "" : l["name"].get<std::string>());
    } else {
      std::vector<int64_t> latents = {a->latent};
      if (!a->concept_name.empty()) {
        latents = names.latents_named(a->concept_name);
        if (latents.empty())
          throw_input("{}: no latent is named '{}' (name latents with `explain match` or `explain name`)",
                      a->names.empty() ? default_names_path(a->activations) : a->names, a->concept_name);
        out["concept"] = a->concept_name;
        out["latents_named"] = latents;
      }
      if (latents[0] >= acts.acts.n_cols) throw_input("{}: latent {}, the file has {} latents", a->activations, latents[0], acts.acts.n_cols);
      const LatentIndex x = open_index(a->activations, a->index, &acts.acts);
      const auto hits = explain::top_images(x, latents[0], a->top);
      // With patch activations the montage shows where on each image the latent fires.
      const std::string patch_path = a->patch_acts.empty() ? explain::patch_activations_for(a->activations) : a->patch_acts;
      std::optional<explain::PatchMaps> maps;
      if (!a->montage.empty() && !patch_path.empty()) maps.emplace(patch_path);
      nlohmann::json list = nlohmann::json::array();
      for (const auto& h : hits) {
        const std::string& id = acts.ids[static_cast<size_t>(h.row)];
        list.push_back({{"id", id}, {"row", h.row}, {"activation", h.value}});
        if (maps) {
          heat_tiles.push_back({fmt::format("{:.4g}\n{}", h.value, id), load_image(root, id), maps->map(id, latents[0])});
          const explain::PatchHit peak = maps->peak(id, latents[0]);
          if (peak.patch >= 0) list.back()["where"] = explain::describe_patch(maps->geometry(), peak.image, peak.patch);
        } else if (!a->montage.empty()) {
          tiles.push_back({load_image(root, id), fmt::format("{:.4g}\n{}", h.value, id)});
        }
        if (!a->json) fmt::print("{:<40} {:.4g}{}\n", id, h.value, list.back().contains("where") ? "  " + list.back()["where"].get<std::string>() : "");
      }
      if (maps) out["patch_activations"] = patch_path;
      out["latent"] = latents[0];
      out["firing_rate"] = x.firing_rate(latents[0]);
      out["images"] = list;
      title = fmt::format("latent {}: top {} of {} images it fires on", latent_label(names, latents[0]), hits.size(),
                          x.fire_count[static_cast<size_t>(latents[0])]);
    }
    if (!a->montage.empty()) {
      if (root.empty()) spdlog::warn("image folder unknown (pass --image-root); tiles show 'missing'");
      if (!heat_tiles.empty()) {
        explain::HeatmapParams hp;
        hp.cols = 5;
        hp.tile_px = 160;
        explain::write_heatmap_montage(a->montage, title, heat_tiles, hp, {a->activations});
      } else {
        explain::write_montage(a->montage, title, tiles, 5, 160, {a->activations});
      }
      out["montage"] = a->montage;
    }
    if (a->json) print_json(out);
    return 0;
  };
}

Command command_explain() {
  return {"explain", "latent statistics and retrieval, naming, global and local explanations, curves",
          [](CLI::App& sub) -> Runner {
            sub.require_subcommand(1);
            const std::vector<std::pair<std::string, std::string>> names = {
                {"stats", "per-latent statistics and the inverted index (A.index.h5)"},
                {"retrieve", "top images of a latent or concept, top latents of an image (--montage PNG)"},
                {"match", "name latents from 0/1 annotation columns (AUROC, AP, latent sets vs a probe)"},
                {"name", "name latents by the direction of their decoder rows (Hungarian assignment)"},
                {"global", "per class, the latents with the largest weights and contributions (--plot PNG)"},
                {"local", "one image: probabilities and the latents contributing to each class"},
                {"curve", "metric against the number of latents edited, per ranking rule (CSV, PNG)"},
                {"heatmap", "where on the images a latent fires, from patch activations (PNG)"},
                {"localize", "pointing game and patch AUROC of concept latents against ground-truth masks"}};
            using Setup = Runner (*)(CLI::App*);
            const Setup setups[] = {setup_explain_stats,  setup_explain_retrieve, setup_explain_match,
                                    setup_explain_name,   setup_explain_global,   setup_explain_local,
                                    setup_explain_curve,  setup_explain_heatmap,  setup_explain_localize};
            std::vector<std::pair<CLI::App*, Runner>> runners;
            for (size_t i = 0; i < names.size(); ++i) {
              CLI::App* c = sub.add_subcommand(names[i].first, names[i].second);
              c->option_defaults()->always_capture_default();
              runners.emplace_back(c, setups[i](c));
            }
            return [runners](const Context& ctx) -> int {
              for (const auto& [c, run] : runners)
                if (c->parsed()) return run(ctx);
              throw_usage("explain: expected a subcommand");
            };
          }};
}

}  // namespace cl::cli
