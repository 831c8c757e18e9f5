// `conceptlab embed`: frozen TorchScript encoder over a CSV of images or a folder -> embeddings.
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/device.h"
#include "core/error.h"
#include "tools/command.h"
#include "tools/embed/embed.h"
#include "tools/params_cli.h"

namespace cl::cli {

Command command_embed() {
  return {"embed", "embed images with a TorchScript encoder (CSV or folder) into an embeddings file",
          [](CLI::App& sub) -> Runner {
            using embed::EmbedParams;
            using embed::PreprocessParams;
            auto pc = std::make_shared<ParamsCli<EmbedParams>>(&sub, "embed params JSON (configs/embed.json)");
            // Preprocessing flags apply over the preprocessing JSON (--preprocess, or beside the model).
            auto pre = std::make_shared<ParamsCli<PreprocessParams>>(&sub);
            // Output flags apply over the encoder JSON's "output" object.
            auto outp = std::make_shared<ParamsCli<embed::OutputParams>>(&sub);
            auto json = std::make_shared<bool>(false);
            auto& c = *pc;
            c.option("--model", &EmbedParams::model,
                     "TorchScript encoder, float [B,3,H,W] -> [B,D], [B,D,h,w] or [B,T,D] (a program: trust it)");
            c.option("--preprocess", &EmbedParams::preprocess_json, "preprocessing JSON (default: beside the model, MODEL.json)");
            c.option("--csv", &EmbedParams::csv, "metadata CSV, one row per image; other columns are copied to columns/");
            c.option("--image-col", &EmbedParams::image_col, "CSV column holding image paths relative to --image-root");
            c.option("--image-root", &EmbedParams::image_root, "folder the CSV paths are relative to (default: the CSV's folder)");
            c.option("--images", &EmbedParams::images_dir, "folder mode: every image below DIR, ids = relative paths");
            c.option("--out", &EmbedParams::out, "output embeddings .h5");
            c.option("--device", &EmbedParams::device, "auto | cpu | cuda | cuda:N");
            c.option("--batch", &EmbedParams::batch, "images per model call");
            c.flag("--fp16", &EmbedParams::fp16, "half precision on CUDA");
            c.option("--workers", &EmbedParams::workers, "decoding threads (0 = auto: CUDA one per core, CPU half the cores)");
            c.flag("--skip-bad", &EmbedParams::skip_bad, "embed the good images and list the others in OUT.skipped.csv");
            c.flag("--resume", &EmbedParams::resume, "continue an interrupted run from OUT.partial");
            c.option("--shard", &EmbedParams::shard,
                     "I/N: embed only blocks I, I+N, ... of the input list (0 <= I < N); join with merge-embeddings");
            c.option("--shard-block", &EmbedParams::shard_block, "inputs per block when sharded");
            c.flag("--allow-outside-root", &EmbedParams::allow_outside_root,
                   "read CSV ids that are absolute paths or climb out of --image-root with '..' (refused otherwise)");
            const std::string sp = "Patches (feature-map or token outputs)";
            c.flag("--patches", &EmbedParams::patches, "also write the patch grid (conceptlab.patch_embeddings)")->group(sp);
            c.option("--patch-out", &EmbedParams::patch_out, "patch-embeddings .h5 (default: OUT's name with .patches.h5)")
                ->group(sp);
            c.option("--patch-fp16", &EmbedParams::patch_fp16, "store patches as float16 (true|false)")->group(sp);
            outp->option("--tokens", &embed::OutputParams::tokens,
                         "[B,T,D] outputs: image embedding = cls | patches (their mean) | all (mean) | auto")
                ->group(sp);
            outp->option("--prefix-tokens", &embed::OutputParams::prefix_tokens,
                         "[B,T,D] outputs: tokens before the grid (class token first; -1 = detect)")
                ->group(sp);
            outp->option("--grid", &embed::OutputParams::grid, "[B,T,D] outputs: HxW when the grid is not square")->group(sp);
            auto& o = *pre;
            const std::string g = "Preprocessing";
            o.option("--image-size", &PreprocessParams::image_size, "override: model input side")->group(g);
            o.option("--resize", &PreprocessParams::resize, "override: shorter_side_center_crop | direct")->group(g);
            o.option("--resize-size", &PreprocessParams::resize_size, "override: shorter side before the crop (0 = image size)")
                ->group(g);
            o.option("--interpolation", &PreprocessParams::interpolation,
                     "override: bilinear_antialias | bicubic_antialias | bilinear | bicubic | area | nearest ...")
                ->group(g);
            o.option("--mean", &PreprocessParams::mean, "override: 3 channel means")->expected(3)->group(g);
            o.option("--std", &PreprocessParams::std, "override: 3 channel stds")->expected(3)->group(g);
            o.option("--channel-order", &PreprocessParams::channel_order, "override: RGB | BGR")->group(g);
            o.option("--input-range", &PreprocessParams::input_range, "override: range uint8 maps to before mean/std")
                ->expected(2)
                ->group(g);
            o.option("--alpha", &PreprocessParams::alpha, "override: drop | white")->group(g);
            sub.add_flag("--json", *json, "print the report as one JSON object");
            return [pc, pre, outp, json](const Context& ctx) -> int {
              EmbedParams p = pc->resolve();
              if (p.model.empty() || p.out.empty()) throw_usage("embed: --model and --out are required");
              // Flags alone may define the preprocessing when no JSON is beside the model.
              const std::string path = p.preprocess_json.empty() ? embed::default_preprocess_path(p.model) : p.preprocess_json;
              PreprocessParams pp;
              if (std::filesystem::exists(path) || !pre->any_flag()) pp = embed::resolve_preprocess(p);
              pre->apply_flags(pp);
              embed::validate(pp, "preprocessing flags");
              bool json_patches = false;
              embed::OutputParams op = embed::resolve_output(p, &json_patches);
              outp->apply_flags(op);
              embed::validate(op, "output flags");
              p.patches = p.patches || json_patches;
              init_torch_threads();
              const Device dev = pick_device(p.device);
              const embed::EmbedReport r = embed::embed_images(p, pp, dev, ctx.progress, op);
              if (*json) {
                print_json(embed::to_json(r));
                return 0;
              }
              fmt::print("wrote {}: {} rows x {} ({} skipped{}) in {:.1f} s, {:.1f} images/s on {}\n", r.out, r.n_rows,
                         r.dim, r.n_skipped, r.n_resumed ? fmt::format(", {} resumed", r.n_resumed) : "", r.seconds,
                         r.images_per_s, r.device);
              if (!r.patch_out.empty())
                fmt::print("wrote {}: {} images x {} x {} patches x {}\n", r.patch_out, r.n_rows, r.grid_h, r.grid_w, r.dim);
              if (!r.skipped_csv.empty()) fmt::print("skipped images listed in {}\n", r.skipped_csv);
              return 0;
            };
          }};
}

}  // namespace cl::cli
