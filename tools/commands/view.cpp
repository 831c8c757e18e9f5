// `conceptlab view [WORKSPACE]`: the viewer over a pipeline workspace or explicit files; with
// --screenshot, one headless frame written as a PNG (Xvfb + Mesa where there is no display).
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/device.h"
#include "core/error.h"
#include "core/parse.h"
#include "tools/command.h"
#include "tools/commands/flags.h"
#include "viewer/app.h"

namespace cl::cli {

Command command_view() {
  return {"view", "the interactive workbench over a workspace (Dear ImGui); --screenshot renders one panel to PNG",
          [](CLI::App& sub) -> Runner {
            struct Args {
              std::string workspace, activations, cbm, labels, label_col, id_col, split_col, eval_split = "test", subgroup_col;
              std::string images, sae, names, index, screenshot, panel = "overview", select, size = "1600x1000", edits;
              std::string device = "cpu", overlay;
            };
            auto a = std::make_shared<Args>();
            sub.add_option("workspace", a->workspace, "workspace folder from `conceptlab run` (or give the files below)");
            sub.add_option("--activations", a->activations, "explicit files: conceptlab.activations");
            sub.add_option("--cbm", a->cbm, "explicit files: the concept bottleneck (conceptlab.linear)");
            add_labels_flag(&sub, a->labels)->group("Explicit files");
            add_label_col_flag(&sub, a->label_col)->group("Explicit files");
            add_id_col_flag(&sub, a->id_col)->group("Explicit files");
            add_split_options(&sub, a->split_col, a->eval_split, a->subgroup_col);
            sub.add_option("--images", a->images, "image root (ids are paths under it)");
            sub.add_option("--sae", a->sae, "explicit files: the SAE (decoder directions, query by example)");
            sub.add_option("--names", a->names, "latent names file (default ACTIVATIONS.names.h5)");
            sub.add_option("--index", a->index, "latent index file (default ACTIVATIONS.index.h5)");
            sub.add_option("--edits", a->edits, "edit file to open in the intervention panel");
            auto* shot = sub.add_option("--screenshot", a->screenshot, "render headless and write this PNG, then exit");
            sub.add_option("--panel", a->panel, "with --screenshot: " + viewer::panel_choices());
            sub.add_option("--select", a->select, "with --screenshot: latent=N or image=ID");
            sub.add_option("--size", a->size, "window size WxH");
            sub.add_option("--device", a->device, "query by example: cpu | cuda | auto");
            sub.add_option("--overlay", a->overlay,
                           "start with heatmap overlays on (needs patch activations): latent | attribution");
            return [a, shot](const Context&) -> int {
              if (shot->count() > 0 && a->screenshot.empty()) throw_usage("--screenshot '': expected a PNG path");
              viewer::ViewerOptions o;
              if (!a->workspace.empty()) {
                if (!a->activations.empty() || !a->cbm.empty() || !a->labels.empty())
                  throw_usage("view: give a workspace folder or explicit files (--activations, --cbm, --labels), not both");
                o.paths = viewer::WorkspacePaths::from_workspace(a->workspace);
              } else if (a->activations.empty()) {
                throw_usage("view: give a workspace folder, or --activations (with --cbm, --labels, --label-col)");
              } else if (a->labels.empty() != a->label_col.empty()) {
                throw_usage("view: --labels and --label-col go together");
              }
              auto set = [](std::string& field, const std::string& v) {
                if (!v.empty()) field = v;
              };
              set(o.paths.activations, a->activations), set(o.paths.cbm, a->cbm), set(o.paths.csv, a->labels);
              set(o.paths.label_col, a->label_col), set(o.paths.id_col, a->id_col), set(o.paths.split_col, a->split_col);
              set(o.paths.subgroup_col, a->subgroup_col), set(o.paths.image_root, a->images), set(o.paths.sae, a->sae);
              set(o.paths.names, a->names), set(o.paths.index, a->index);
              if (!a->split_col.empty()) o.paths.eval_split = a->eval_split;
              o.paths.fill_defaults();
              const size_t x = a->size.find('x');
              double w = 0, h = 0;
              if (x == std::string::npos || !parse_number(a->size.substr(0, x), w) || !parse_number(a->size.substr(x + 1), h) ||
                  w != std::floor(w) || h != std::floor(h))
                throw_usage("--size '{}': expected WIDTHxHEIGHT like 1600x1000", a->size);
              o.width = static_cast<int>(w), o.height = static_cast<int>(h);
              o.screenshot_path = a->screenshot, o.panel = a->panel, o.select = a->select, o.edits_path = a->edits;
              o.overlay = a->overlay;
              if (a->screenshot.empty() && (a->panel != "overview" || !a->select.empty()))
                spdlog::info("view: --panel and --select pick the first panel shown");
              o.device = pick_device(a->device);
              return viewer::run_viewer(o);
            };
          }};
}

}  // namespace cl::cli
