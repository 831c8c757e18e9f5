// `conceptlab explain heatmap` (where on the images a latent fires, drawn over the original images)
// and `explain localize` (pointing game and patch AUROC against ground-truth masks), both from
// patch activations (`sae encode --patch-out`).
#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/activations.h"
#include "core/csv.h"
#include "core/error.h"
#include "explain/heatmap.h"
#include "explain/localize.h"
#include "tools/commands/explain_common.h"
#include "tools/params_cli.h"

namespace fs = std::filesystem;

namespace cl::cli {

namespace {

// "hair=12,ruler=40" -> (concept, latent) pairs.
std::vector<std::pair<std::string, int64_t>> parse_concept_latents(const std::string& flag, const std::string& text) {
  std::vector<std::pair<std::string, int64_t>> out;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw_usage("{} '{}': expected concept=latent pairs like hair=12,ruler=40", flag, text);
    out.emplace_back(item.substr(0, eq), parse_latent_list(flag, item.substr(eq + 1)).at(0));
    start = end + 1;
  }
  if (out.empty()) throw_usage("{}: expected concept=latent pairs like hair=12,ruler=40", flag);
  return out;
}

}  // namespace

Runner setup_explain_heatmap(CLI::App* s) {
  struct Args {
    std::string patch_acts, images, out, names;
    int64_t latent = -1, top = 16;
    std::vector<std::string> ids;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto pc = std::make_shared<ParamsCli<explain::HeatmapParams>>(s, "heatmap params JSON (configs/explain-heatmap.json)");
  s->add_option("--patch-activations", a->patch_acts, "patch activations .h5 (sae encode --patch-out)")->required();
  s->add_option("--latent", a->latent, "latent to map")->required();
  s->add_option("--id", a->ids, "image ids to draw (repeatable); default: the --top images");
  s->add_option("--top", a->top, "without --id: the images where the latent's largest patch value is highest");
  s->add_option("--images", a->images, "folder the image ids are relative to (default: image_root of the embeddings)");
  s->add_option("--out", a->out, "montage PNG (default: PA's name with .heatmap_LATENT.png)");
  s->add_option("--names", a->names, "latent names file for the title (default: beside the image activations)");
  pc->option("--opacity", &explain::HeatmapParams::opacity, "overlay opacity at the scale's top (0..1)");
  pc->option("--vmax", &explain::HeatmapParams::vmax, "colour scale top (0: the largest value drawn)");
  pc->option("--tile-px", &explain::HeatmapParams::tile_px, "montage tile side");
  pc->option("--cols", &explain::HeatmapParams::cols, "montage columns");
  s->add_flag("--json", a->json, "print the images, their peaks and the PNG path as one JSON object");
  return [a, pc](const Context&) -> int {
    const explain::HeatmapParams p = pc->resolve();
    explain::validate(p);
    if (a->top < 1) throw_usage("explain heatmap: --top {}: expected >= 1", a->top);
    const explain::PatchMaps maps(a->patch_acts);
    const ActivationsReader& r = maps.reader();
    const PatchGeometry* g = &maps.geometry();
    if (a->latent < 0 || a->latent >= r.n_latents())
      throw_usage("explain heatmap: --latent {}: {} has latents 0..{}", a->latent, a->patch_acts, r.n_latents() - 1);
    std::vector<explain::PatchHit> hits;
    if (a->ids.empty()) {
      hits = explain::top_images_by_patch(r, *g, a->latent, a->top);
      if (hits.empty()) throw_input("{}: latent {} fires on no patch of any image", a->patch_acts, a->latent);
    } else {
      for (const auto& id : a->ids) {
        if (maps.image_of(id) < 0) throw_input("{}: no image '{}'", a->patch_acts, id);
        hits.push_back(maps.peak(id, a->latent));
        hits.back().image = maps.image_of(id);
      }
    }
    const std::string root = image_root_for(a->patch_acts, a->images);
    const std::string out = !a->out.empty() ? a->out
                                            : (fs::path(a->patch_acts).parent_path() /
                                               fmt::format("{}.heatmap_{}.png", fs::path(a->patch_acts).stem().string(), a->latent))
                                                  .string();
    const std::string image_acts = r.config().value("image_activations", std::string());
    const LatentNames names = load_names(a->names, image_acts.empty() ? a->patch_acts : image_acts);
    std::vector<explain::HeatmapTile> tiles;
    nlohmann::json images = nlohmann::json::array();
    for (const auto& h : hits) {
      const std::string& id = g->image_ids[static_cast<size_t>(h.image)];
      tiles.push_back({fmt::format("{:.3g}\n{}", h.value, id), load_image(root, id), maps.map(id, a->latent)});
      nlohmann::json j = {{"id", id}, {"max", h.value}, {"patch", h.patch}};
      if (h.patch >= 0) {
        const Box b = patch_box(*g, h.image, h.patch);
        j["cell"] = {h.patch / g->grid_w, h.patch % g->grid_w};
        j["box"] = {b.x0, b.y0, b.x1, b.y1};
      }
      j["image_found"] = !tiles.back().bgr.empty();
      images.push_back(j);
    }
    const double vmax = explain::write_heatmap_montage(
        out, fmt::format("latent {}: where it fires ({} x {} patches)", latent_label(names, a->latent), g->grid_h, g->grid_w),
        tiles, p, {a->patch_acts});
    const nlohmann::json rep = {{"png", out}, {"latent", a->latent}, {"vmax", vmax}, {"images", images}};
    if (a->json) {
      print_json(rep);
      return 0;
    }
    fmt::print("wrote {} ({} images, colour scale 0..{:.3g})\n", out, hits.size(), vmax);
    for (const auto& j : images)
      fmt::print("  {:<28} max {:.4g}{}\n", j["id"].get<std::string>(), j["max"].get<double>(),
                 j.contains("cell") ? fmt::format(" at cell ({}, {}), box [{:.0f}, {:.0f}, {:.0f}, {:.0f}]", j["cell"][0].get<int>(),
                                                  j["cell"][1].get<int>(), j["box"][0].get<double>(), j["box"][1].get<double>(),
                                                  j["box"][2].get<double>(), j["box"][3].get<double>())
                                    : std::string(" (does not fire)"));
    const bool missing = std::any_of(tiles.begin(), tiles.end(), [](const explain::HeatmapTile& t) { return t.bgr.empty(); });
    if (!root.empty() && missing)
      spdlog::warn("explain heatmap: some images were not found below {} (drawn grey)", root);
    else if (root.empty())
      spdlog::warn("explain heatmap: no image folder known (pass --images ROOT); heatmaps drawn on grey");
    return 0;
  };
}

Runner setup_explain_localize(CLI::App* s) {
  struct Args {
    std::string patch_acts, masks, latents, csv;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto pc = std::make_shared<ParamsCli<explain::LocalizeParams>>(s, "localize params JSON (configs/explain-localize.json)");
  s->add_option("--patch-activations", a->patch_acts, "patch activations .h5 (sae encode --patch-out)")->required();
  s->add_option("--masks", a->masks, "masks .h5 (conceptlab.masks) or DIR/<concept>/<image>.png")->required();
  s->add_option("--latents", a->latents, "concept=latent pairs, e.g. hair=12,ruler=40")->required();
  s->add_option("--csv", a->csv, "also write the table as CSV");
  pc->option("--random-latents", &explain::LocalizeParams::random_latents, "control: random latents averaged");
  pc->option("--seed", &explain::LocalizeParams::seed, "control: seed of the random latents");
  s->add_flag("--json", a->json, "print the table as one JSON object");
  return [a, pc](const Context&) -> int {
    const explain::LocalizeParams p = pc->resolve();
    const auto pairs = parse_concept_latents("--latents", a->latents);
    const explain::PatchMaps maps(a->patch_acts);
    const explain::MaskSource masks(a->masks);
    const auto rows = explain::localize(maps.reader(), maps.geometry(), masks, pairs, p);
    nlohmann::json table = nlohmann::json::array();
    for (const auto& row : rows) table.push_back(explain::to_json(row));
    if (!a->csv.empty()) {
      CsvTable t;
      t.header = {"concept", "latent", "n_images", "pointing", "control_pointing", "patch_auroc", "control_auroc"};
      for (const auto& j : table) {
        std::vector<std::string> line;
        for (const auto& k : t.header) line.push_back(j[k].is_string() ? j[k].get<std::string>() : j[k].dump());
        t.rows.push_back(line);
      }
      write_csv(a->csv, t, {a->patch_acts});
    }
    if (a->json) {
      print_json({{"patch_activations", a->patch_acts}, {"masks", a->masks}, {"rows", table}});
      return 0;
    }
    fmt::print("{:<20} {:>7} {:>8} {:>9} {:>9} {:>11} {:>9}\n", "concept", "latent", "images", "pointing", "(random)",
               "patch AUROC", "(random)");
    for (const auto& row : rows)
      fmt::print("{:<20} {:>7} {:>8} {:>9.3f} {:>9.3f} {:>11.3f} {:>9.3f}\n", row.concept_name, row.latent, row.n_images,
                 row.pointing, row.control_pointing, row.patch_auroc, row.control_auroc);
    return 0;
  };
}

}  // namespace cl::cli
