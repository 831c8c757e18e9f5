// `conceptlab demo`: the self-contained walkthrough: demo world -> embeddings -> SAE -> concept
// latents -> concept bottleneck vs probe on a hair-biased split -> hair latents zeroed.
#include <algorithm>

#include "core/device.h"
#include "core/error.h"
#include "tools/command.h"
#include "tools/demo/demo.h"

namespace cl::cli {

Command command_demo() {
  return {"demo", "run the demo end to end: generate a synthetic world, embed it, check the concepts",
          [](CLI::App& sub) -> Runner {
            struct State {
              demo::DemoParams p;
              bool json = false;
            };
            auto s = std::make_shared<State>();
            auto& p = s->p;
            sub.add_option("--out", p.out_dir, "output folder");
            sub.add_option("--n", p.n, "number of images");
            sub.add_option("--seed", p.seed, "random seed");
            sub.add_option("--batch", p.batch, "images per encoder call");
            sub.add_option("--device", p.device, "auto | cpu | cuda | cuda:N");
            sub.add_option("--sae-arch", p.sae_arch, "SAE architecture: relu-l1 | topk | batchtopk");
            sub.add_option("--sae-expansion", p.sae_expansion, "SAE latents per embedding dimension");
            sub.add_option("--sae-k", p.sae_k, "active latents per image (topk, batchtopk)");
            sub.add_option("--sae-batch", p.sae_batch, "SAE batch size");
            sub.add_option("--sae-epochs", p.sae_epochs, "SAE epochs");
            sub.add_option("--sae-lr", p.sae_lr, "SAE learning rate");
            sub.add_option("--cbm-alpha", p.cbm_alpha, "L1 strength of the concept bottleneck and the probe");
            sub.add_option("--hair-latent-auroc", p.hair_latent_auroc, "zero latents detecting hair at this AUROC");
            sub.add_flag("--json", s->json, "print the report as one JSON object");
            return [s]() -> int {
              init_torch_threads();
              auto r = demo::run_demo(s->p, pick_device(s->p.device), globals().quiet);
              if (s->json) {
                print_json(demo::to_json(r));
                return 0;
              }
              fmt::print("world: {} images ({} train, {} test, {} malignant) in {:.1f} s -> {}\n", r.world.n,
                         r.world.n_train, r.world.n_test, r.world.n_malignant, r.world.seconds, r.world.dir);
              fmt::print("embed: {} rows x {} in {:.1f} s ({:.0f} images/s on {}) -> {}\n", r.embed.n_rows, r.embed.dim,
                         r.embed.seconds, r.embed.images_per_s, r.embed.device, r.embeddings_path);
              fmt::print("check: ridge probe AUROC per concept (fit on train, scored on test):\n");
              for (auto& [name, auc] : r.check.concept_auroc) fmt::print("  {:<18} {:.3f}\n", name, auc);
              fmt::print("check: hair~malignant correlation (phi) train {:.2f}, test {:.2f} (the planted bias)\n",
                         r.check.hair_malignant_corr_train, r.check.hair_malignant_corr_test);
              const auto& m = r.sae_metrics;
              fmt::print("sae: {} latents in {:.1f} s: FVU {:.3f}, L0 {:.1f}, dead {:.1f}% -> {}\n",
                         r.sae_metrics.value("n_latents", int64_t{0}), r.sae_seconds, m.value("fvu", 0.0),
                         m.value("l0", 0.0), 100 * m.value("dead_fraction", 0.0), r.activations_path);
              fmt::print("concepts: best single latent per flag (AUROC over all images):\n");
              for (auto& c : r.matches) fmt::print("  {:<18} latent {:<6} {:.3f}\n", c.concept_name, c.latent, c.auroc);
              fmt::print("malignant, fit on the hair-biased train split, scored on the unbiased test split:\n");
              fmt::print("  concept bottleneck (L1 on latents)  AUROC {:.3f}, {} non-zero weights\n", r.cbm.test_auroc,
                         r.cbm.nnz);
              fmt::print("  probe (L1 on embeddings)            AUROC {:.3f}, {} non-zero weights\n", r.probe.test_auroc,
                         r.probe.nnz);
              if (r.hair_latents.empty())
                fmt::print("  intervention: no single latent detects hair at AUROC >= {} (best {:.3f}); nothing zeroed\n",
                           s->p.hair_latent_auroc,
                           std::find_if(r.matches.begin(), r.matches.end(),
                                        [](auto& m) { return m.concept_name == "hair"; })->auroc);
              else
                fmt::print("  bottleneck with hair latents {} zeroed: AUROC {:.3f} (they held {:.1f}% of |weights|)\n",
                           nlohmann::json(r.hair_latents).dump(), r.cbm_test_auroc_hair_zeroed, 100 * r.hair_weight_share);
              fmt::print("report: {}\n", r.report_path);
              return 0;
            };
          }};
}

}  // namespace cl::cli
