// `conceptlab demo-data`: generate the synthetic demo world (images, meta.csv, demo encoder).
#include "core/error.h"
#include "tools/command.h"
#include "tools/demo/world.h"

namespace cl::cli {

Command command_demo_data() {
  return {"demo-data", "generate the synthetic demo world: images with known concepts, labels, a demo encoder",
          [](CLI::App& sub) -> Runner {
            struct State {
              demo::DemoWorldParams p;
              std::string out;
              bool json = false;
            };
            auto s = std::make_shared<State>();
            auto& p = s->p;
            sub.add_option("--out", s->out, "output folder (created)")->required();
            sub.add_option("--n", p.n, "number of images");
            sub.add_option("--seed", p.seed, "random seed");
            sub.add_option("--image-size", p.image_size, "image side in pixels");
            sub.add_option("--train-fraction", p.train_fraction, "P(split = train)");
            sub.add_option("--p-structure", p.p_structure, "P(flag) of each lesion structure");
            sub.add_option("--p-artifact", p.p_artifact, "P(flag) of ruler, ink, gel_bubble, dark_corner");
            sub.add_option("--threshold", p.malignant_threshold, "checklist score at which the rule says malignant");
            sub.add_option("--label-noise", p.label_noise, "probability that the label is flipped");
            sub.add_option("--hair-malignant", p.hair_p_malignant_train, "train: P(hair | malignant)");
            sub.add_option("--hair-benign", p.hair_p_benign_train, "train: P(hair | benign)");
            sub.add_option("--hair-test", p.hair_p_test, "test: P(hair), independent of the label");
            sub.add_option("--jpeg-quality", p.jpeg_quality, "JPEG quality of the images");
            sub.add_option("--workers", p.workers, "rendering threads (0 = one per core)");
            sub.add_flag("--json", s->json, "print the report as one JSON object");
            return [s]() -> int {
              auto r = demo::generate_demo_world(s->p, s->out, globals().quiet);
              if (s->json) {
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
