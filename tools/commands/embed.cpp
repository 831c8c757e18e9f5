// `conceptlab embed`: frozen TorchScript encoder over a CSV of images or a folder -> embeddings.
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/device.h"
#include "core/error.h"
#include "tools/command.h"
#include "tools/embed/embed.h"

namespace cl::cli {

Command command_embed() {
  return {"embed", "embed images with a TorchScript encoder (CSV or folder) into an embeddings file",
          [](CLI::App& sub) -> Runner {
            struct State {
              embed::EmbedParams p;
              embed::PreprocessParams ovr;  // preprocessing flags, applied over the JSON
              bool json = false;
              std::vector<CLI::Option*> pre_opts;
            };
            auto s = std::make_shared<State>();
            auto& p = s->p;
            sub.add_option("--model", p.model, "TorchScript encoder, float [B,3,H,W] -> [B,D]")->required();
            sub.add_option("--preprocess", p.preprocess_json, "preprocessing JSON (default: beside the model, MODEL.json)");
            sub.add_option("--csv", p.csv, "metadata CSV, one row per image; other columns are copied to columns/");
            sub.add_option("--image-col", p.image_col, "CSV column holding image paths relative to --image-root");
            sub.add_option("--image-root", p.image_root, "folder the CSV paths are relative to (default: the CSV's folder)");
            sub.add_option("--images", p.images_dir, "folder mode: every image below DIR, ids = relative paths");
            sub.add_option("--out", p.out, "output embeddings .h5")->required();
            sub.add_option("--device", p.device, "auto | cpu | cuda | cuda:N");
            sub.add_option("--batch", p.batch, "images per model call");
            sub.add_flag("--fp16", p.fp16, "half precision on CUDA");
            sub.add_option("--workers", p.workers, "decoding threads (0 = auto: CUDA one per core, CPU half the cores)");
            sub.add_flag("--skip-bad", p.skip_bad, "embed the good images and list the others in OUT.skipped.csv");
            sub.add_flag("--resume", p.resume, "continue an interrupted run from OUT.partial");
            sub.add_option("--stop-after-rows", p.stop_after_rows, "test hook: exit(75) after checkpointing N rows")
                ->group("");
            auto& o = s->ovr;
            s->pre_opts = {
                sub.add_option("--image-size", o.image_size, "override: model input side")->group("Preprocessing"),
                sub.add_option("--resize", o.resize, "override: shorter_side_center_crop | direct")->group("Preprocessing"),
                sub.add_option("--resize-size", o.resize_size, "override: shorter side before the crop (0 = image size)")
                    ->group("Preprocessing"),
                sub.add_option("--interpolation", o.interpolation,
                               "override: bilinear_antialias | bicubic_antialias | bilinear | bicubic | area | nearest ...")
                    ->group("Preprocessing"),
                sub.add_option("--mean", o.mean, "override: 3 channel means")->expected(3)->group("Preprocessing"),
                sub.add_option("--std", o.std, "override: 3 channel stds")->expected(3)->group("Preprocessing"),
                sub.add_option("--channel-order", o.channel_order, "override: RGB | BGR")->group("Preprocessing"),
                sub.add_option("--input-range", o.input_range, "override: range uint8 maps to before mean/std")
                    ->expected(2)->group("Preprocessing"),
                sub.add_option("--alpha", o.alpha, "override: drop | white")->group("Preprocessing")};
            sub.add_flag("--json", s->json, "print the report as one JSON object");
            return [s]() -> int {
              auto& p = s->p;
              bool any_flag = false;
              for (auto* opt : s->pre_opts) any_flag |= opt->count() > 0;
              std::string path = p.preprocess_json.empty() ? embed::default_preprocess_path(p.model) : p.preprocess_json;
              embed::PreprocessParams pre;
              if (std::filesystem::exists(path) || !any_flag) pre = embed::resolve_preprocess(p);
              const auto& o = s->ovr;
              const auto& f = s->pre_opts;
              if (f[0]->count()) pre.image_size = o.image_size;
              if (f[1]->count()) pre.resize = o.resize;
              if (f[2]->count()) pre.resize_size = o.resize_size;
              if (f[3]->count()) pre.interpolation = o.interpolation;
              if (f[4]->count()) pre.mean = o.mean;
              if (f[5]->count()) pre.std = o.std;
              if (f[6]->count()) pre.channel_order = o.channel_order;
              if (f[7]->count()) pre.input_range = o.input_range;
              if (f[8]->count()) pre.alpha = o.alpha;
              embed::validate(pre, "preprocessing flags");
              init_torch_threads();
              torch::Device dev = pick_device(p.device);
              embed::EmbedReport r = embed::embed_images(p, pre, dev);
              if (s->json) {
                print_json(embed::to_json(r));
              } else {
                fmt::print("wrote {}: {} rows x {} ({} skipped{}) in {:.1f} s, {:.1f} images/s on {}\n", r.out, r.n_rows,
                           r.dim, r.n_skipped, r.n_resumed ? fmt::format(", {} resumed", r.n_resumed) : "", r.seconds,
                           r.images_per_s, r.device);
                if (!r.skipped_csv.empty()) fmt::print("skipped images listed in {}\n", r.skipped_csv);
              }
              return 0;
            };
          }};
}

}  // namespace cl::cli
