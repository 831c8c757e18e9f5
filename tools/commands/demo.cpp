// `conceptlab demo`: the self-contained walkthrough: demo world -> embeddings -> SAE -> concept
// latents -> concept bottleneck vs probe on a hair-biased split -> hair latents zeroed.
#include <algorithm>

#include "core/device.h"
#include "core/error.h"
#include "tools/command.h"
#include "tools/demo/demo.h"
#include "tools/params_cli.h"

namespace cl::cli {

namespace {

void print_report(const demo::DemoReport& r, const demo::DemoParams& p) {
  fmt::print("world: {} images ({} train, {} test, {} malignant) in {:.1f} s -> {}\n", r.world.n, r.world.n_train,
             r.world.n_test, r.world.n_malignant, r.world.seconds, r.world.dir);
  fmt::print("embed: {} rows x {} in {:.1f} s ({:.0f} images/s on {}) -> {}\n", r.embed.n_rows, r.embed.dim,
             r.embed.seconds, r.embed.images_per_s, r.embed.device, r.embeddings_path);
  fmt::print("check: ridge probe AUROC per concept (fit on train, scored on test):\n");
  for (auto& [name, auc] : r.check.concept_auroc) fmt::print("  {:<18} {:.3f}\n", name, auc);
  fmt::print("check: hair~malignant correlation (phi) train {:.2f}, test {:.2f} (the planted bias)\n",
             r.check.hair_malignant_corr_train, r.check.hair_malignant_corr_test);
  const auto& m = r.sae_metrics;
  fmt::print("sae: {} latents in {:.1f} s: FVU {:.3f}, L0 {:.1f}, dead {:.1f}% -> {}\n", r.n_latents, r.sae_seconds,
             m.fvu, m.l0, 100 * m.dead_fraction, r.activations_path);
  fmt::print("concepts: best single latent per flag (AUROC over all images):\n");
  for (auto& c : r.matches) fmt::print("  {:<18} latent {:<6} {:.3f}\n", c.concept_name, c.latent, c.auroc);
  fmt::print("malignant, fit on the hair-biased train split, scored on the unbiased test split:\n");
  fmt::print("  concept bottleneck (L1 on latents)  AUROC {:.3f}, {} non-zero weights\n", r.cbm.test_auroc, r.cbm.nnz);
  fmt::print("  probe (L1 on embeddings)            AUROC {:.3f}, {} non-zero weights\n", r.probe.test_auroc, r.probe.nnz);
  if (r.hair_latents.empty())
    fmt::print("  intervention: no single latent detects hair at AUROC >= {} (best {:.3f}); nothing zeroed\n",
               p.hair_latent_auroc,
               std::find_if(r.matches.begin(), r.matches.end(), [](auto& m) { return m.concept_name == "hair"; })->auroc);
  else
    fmt::print("  bottleneck with hair latents {} zeroed: AUROC {:.3f} (they held {:.1f}% of |weights|)\n",
               nlohmann::json(r.hair_latents).dump(), r.cbm_test_auroc_hair_zeroed, 100 * r.hair_weight_share);
  fmt::print("report: {}\n", r.report_path);
}

}  // namespace

Command command_demo() {
  return {"demo", "run the demo end to end: generate a synthetic world, embed it, check the concepts",
          [](CLI::App& sub) -> Runner {
            using demo::DemoParams;
            auto pc = std::make_shared<ParamsCli<DemoParams>>(&sub, "demo params JSON (configs/demo.json)");
            auto json = std::make_shared<bool>(false);
            auto& c = *pc;
            auto world = [](auto f) { return [f](DemoParams& p) -> auto& { return p.world.*f; }; };
            auto sae = [](auto f) { return [f](DemoParams& p) -> auto& { return p.sae.*f; }; };
            using W = demo::DemoWorldParams;
            using S = sae::TrainParams;
            c.option("--out", &DemoParams::out_dir, "output folder");
            c.option("--n", world(&W::n), "number of images");
            c.option_both("--seed", world(&W::seed), [](DemoParams& p) -> auto& { return p.sae.seed; },
                          "random seed (world and SAE)");
            c.option("--batch", &DemoParams::batch, "images per encoder call");
            c.option("--device", &DemoParams::device, "auto | cpu | cuda | cuda:N");
            c.option("--sae-arch", sae(&S::arch), "SAE architecture: relu-l1 | topk | batchtopk");
            c.option("--sae-expansion", sae(&S::expansion), "SAE latents per embedding dimension");
            c.option("--sae-k", sae(&S::k), "active latents per image (topk, batchtopk)");
            c.option("--sae-batch", sae(&S::batch), "SAE batch size");
            c.option("--sae-epochs", sae(&S::epochs), "SAE epochs");
            c.option("--sae-lr", sae(&S::lr), "SAE learning rate");
            c.option("--cbm-alpha", [](DemoParams& p) -> auto& { return p.cbm.alpha; },
                     "L1 strength of the concept bottleneck and the probe");
            c.option("--hair-latent-auroc", &DemoParams::hair_latent_auroc, "zero latents detecting hair at this AUROC");
            sub.add_flag("--json", *json, "print the report as one JSON object");
            return [pc, json](const Context& ctx) -> int {
              const DemoParams p = pc->resolve();
              init_torch_threads();
              const auto r = demo::run_demo(p, pick_device(p.device), ctx.progress);
              if (*json)
                print_json(demo::to_json(r));
              else
                print_report(r, p);
              return 0;
            };
          }};
}

}  // namespace cl::cli
