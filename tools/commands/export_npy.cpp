// `conceptlab export-npy`: embeddings (float32 [N, D]) or sparse activations (densified to
// float32 [N, n_latents], as the reference's learned_activation.npy) -> .npy plus an ids CSV.
#include <spdlog/spdlog.h>

#include "core/npy_io.h"
#include "tools/command.h"
#include "tools/params_cli.h"

namespace cl::cli {

Command command_export_npy() {
  return {"export-npy", "export embeddings or activations (densified) to a float32 .npy plus an ids CSV",
          [](CLI::App& sub) -> Runner {
            auto pc = std::make_shared<ParamsCli<ExportNpyParams>>(&sub, "export params JSON (configs/export-npy.json)");
            auto json = std::make_shared<bool>(false);
            auto& c = *pc;
            c.option("--in", &ExportNpyParams::in_path, "conceptlab.embeddings or conceptlab.activations file");
            c.option("--out", &ExportNpyParams::out_path, "output .npy");
            c.option("--ids-out", &ExportNpyParams::ids_out, "output CSV of ids (and embedding metadata columns)");
            c.option("--id-col", &ExportNpyParams::id_col, "name of the id column in --ids-out");
            c.option("--max-gb", &ExportNpyParams::max_gb, "refuse outputs larger than this (GiB)");
            sub.add_flag("--json", *json, "print a JSON summary on stdout");
            return [pc, json](const Context& ctx) -> int {
              const ExportNpyParams p = pc->resolve();
              if (p.in_path.empty() || p.out_path.empty()) throw_usage("export-npy: --in and --out are required");
              const NpyExportReport r = export_npy(p, ctx.progress);
              if (*json)
                print_json({{"out", r.out}, {"ids_out", r.ids_out}, {"format", r.format}, {"rows", r.rows}, {"cols", r.cols}});
              else
                spdlog::info("wrote {}: [{}, {}] float32{}", r.out, r.rows, r.cols, r.ids_out.empty() ? "" : ", ids in " + r.ids_out);
              return 0;
            };
          }};
}

}  // namespace cl::cli
