// `conceptlab demo`: the self-contained walkthrough. For now: generate the demo world, embed it
// with the demo encoder, and report counts, speed and a probe check of every concept.
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
              return 0;
            };
          }};
}

}  // namespace cl::cli
