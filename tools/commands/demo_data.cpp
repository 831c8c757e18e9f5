// `conceptlab demo-data`: generate the synthetic demo world (images, meta.csv, demo encoder).
#include "core/error.h"
#include "tools/command.h"
#include "tools/demo/world.h"
#include "tools/params_cli.h"

namespace cl::cli {

Command command_demo_data() {
  return {"demo-data", "generate the synthetic demo world: images with known concepts, labels, a demo encoder",
          [](CLI::App& sub) -> Runner {
            using demo::DemoWorldParams;
            struct Args {
              std::string out;
              bool json = false;
            };
            auto a = std::make_shared<Args>();
            auto pc = std::make_shared<ParamsCli<DemoWorldParams>>(&sub, "world params JSON (configs/demo-data.json)");
            sub.add_option("--out", a->out, "output folder (created)")->required();
            auto& c = *pc;
            c.option("--n", &DemoWorldParams::n, "number of images");
            c.option("--seed", &DemoWorldParams::seed, "random seed");
            c.option("--image-size", &DemoWorldParams::image_size, "image side in pixels");
            c.option("--train-fraction", &DemoWorldParams::train_fraction, "P(split = train)");
            c.option("--p-structure", &DemoWorldParams::p_structure, "P(flag) of each lesion structure");
            c.option("--p-artifact", &DemoWorldParams::p_artifact, "P(flag) of ruler, ink, gel_bubble, dark_corner");
            c.option("--threshold", &DemoWorldParams::malignant_threshold, "checklist score at which the rule says malignant");
            c.option("--label-noise", &DemoWorldParams::label_noise, "probability that the label is flipped");
            c.option("--hair-malignant", &DemoWorldParams::hair_p_malignant_train, "train: P(hair | malignant)");
            c.option("--hair-benign", &DemoWorldParams::hair_p_benign_train, "train: P(hair | benign)");
            c.option("--hair-test", &DemoWorldParams::hair_p_test, "test: P(hair), independent of the label");
            c.option("--jpeg-quality", &DemoWorldParams::jpeg_quality, "JPEG quality of the images");
            c.option("--workers", &DemoWorldParams::workers, "rendering threads (0 = one per core)");
            sub.add_flag("--json", a->json, "print the report as one JSON object");
            return [a, pc](const Context& ctx) -> int {
              const auto r = demo::generate_demo_world(pc->resolve(), a->out, ctx.progress);
              if (a->json) {
                print_json(demo::to_json(r));
              } else {
                fmt::print("wrote {} images ({} train, {} test, {} malignant) to {} in {:.1f} s\n", r.n, r.n_train,
                           r.n_test, r.n_malignant, r.dir, r.seconds);
                fmt::print("metadata {}; demo encoder {} (+ {})\n", r.meta_csv, r.encoder_path, r.encoder_json);
              }
              return 0;
            };
          }};
}

}  // namespace cl::cli
