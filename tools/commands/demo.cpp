// `conceptlab demo`: a fresh demo world, the cached pipeline on it (`conceptlab run`), and the
// story: what the SAE found, what the classifier leans on, what zeroing the hair latents does.
#include <algorithm>
#include <cmath>

#include "core/device.h"
#include "core/error.h"
#include "tools/command.h"
#include "tools/demo/demo.h"
#include "tools/params_cli.h"

namespace cl::cli {

namespace {

void print_story(const demo::DemoReport& r, const demo::DemoParams& p) {
  fmt::print("world: {} images ({} train with hair tied to malignancy, {} test without) -> {}\n", r.world.n,
             r.world.n_train, r.world.n_test, r.world.dir);
  fmt::print("sae: {} latents, FVU {:.3f}, L0 {:.1f}, dead {:.1f}%\n", r.n_latents, r.sae_fvu, r.sae_l0, 100 * r.sae_dead);
  const bool where = std::any_of(r.concepts.begin(), r.concepts.end(), [](const auto& c) { return std::isfinite(c.pointing); });
  fmt::print("concepts the SAE found (best single latent per planted concept, AUROC over all images{}):\n",
             where ? "; where it fires: pointing game against the world's masks, random latents in brackets" : "");
  for (const auto& c : r.concepts) {
    fmt::print("  {:<18} latent {:<5} {:.3f}", c.concept_name, c.latent, c.auroc);
    if (std::isfinite(c.pointing)) fmt::print("   pointing {:.2f} ({:.2f})", c.pointing, c.control_pointing);
    fmt::print("\n");
  }
  auto row = [](const char* what, double auroc, const std::string& extra = "") {
    fmt::print("  {:<57} {:.3f}{}\n", what, auroc, extra.empty() ? "" : "   " + extra);
  };
  fmt::print("malignant, AUROC on the unbiased test split:\n");
  row("concept bottleneck fitted on the hair-biased train split", r.cbm_auroc);
  row("probe on the embeddings, same split", r.probe_auroc);
  row("concept bottleneck fitted without the hair bias", r.unbiased_auroc);
  if (r.hair_latents.empty()) {
    fmt::print("  no latent is named hair: nothing zeroed\n");
  } else {
    row("the biased bottleneck with its hair latents zeroed", r.hair_zeroed_auroc,
        "latents " + nlohmann::json(r.hair_latents).dump());
    row("the same number of random latents zeroed instead", r.control_mean,
        fmt::format("95%: [{:.3f}, {:.3f}]", r.control_lo, r.control_hi));
    if (std::isfinite(r.recovered))
      fmt::print("  zeroing hair recovers {:.0f}% of what the bias cost\n", 100 * r.recovered);
  }
  fmt::print("workspace: {}\n  report: {}\n  charts: global.png, curve.png, montage_<concept>.png\n", r.workspace, r.report_md);
#ifdef CONCEPTLAB_HAVE_VIEWER
  fmt::print("open it: conceptlab view {}\n", r.workspace);
#endif
}

}  // namespace

Command command_demo() {
  return {"demo", "the whole method on a generated world: discover concepts, find the shortcut, zero it",
          [](CLI::App& sub) -> Runner {
            using demo::DemoParams;
            auto pc = std::make_shared<ParamsCli<DemoParams>>(&sub, "demo params JSON (configs/demo.json)");
            auto json = std::make_shared<bool>(false);
            auto& c = *pc;
            auto world = [](auto f) { return [f](DemoParams& p) -> auto& { return p.world.*f; }; };
            using W = demo::DemoWorldParams;
            c.option("--out", &DemoParams::out_dir, "output folder (the world and the workspace)");
            c.option("--n", world(&W::n), "number of images");
            c.option_both("--seed", world(&W::seed), [](DemoParams& p) -> auto& { return p.pipeline.sae.seed; },
                          "random seed (world and SAE)");
            c.option("--device", &DemoParams::device, "auto | cpu | cuda | cuda:N");
            c.option("--sae-epochs", [](DemoParams& p) -> auto& { return p.pipeline.sae.epochs; }, "SAE epochs");
            c.option("--sae-arch", [](DemoParams& p) -> auto& { return p.pipeline.sae.arch; }, "SAE architecture");
            sub.add_flag("--json", *json, "print the story as one JSON object");
            return [pc, json](const Context& ctx) -> int {
              const DemoParams p = pc->resolve();
              init_torch_threads();
              const auto r = demo::run_demo(p, pick_device(p.device), ctx.progress);
              if (*json)
                print_json(demo::to_json(r));
              else
                print_story(r, p);
              return 0;
            };
          }};
}

}  // namespace cl::cli
