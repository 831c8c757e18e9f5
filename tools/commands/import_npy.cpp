// `conceptlab import-npy`: a reference-project .npy embedding matrix plus the CSV listing its
// rows' ids (same order) -> a conceptlab.embeddings file, other CSV columns as metadata.
#include <spdlog/spdlog.h>

#include "core/npy_io.h"
#include "tools/command.h"
#include "tools/params_cli.h"

namespace cl::cli {

Command command_import_npy() {
  return {"import-npy", "import a .npy embedding matrix [N, D] and its ids CSV into a conceptlab.embeddings file",
          [](CLI::App& sub) -> Runner {
            auto pc = std::make_shared<ParamsCli<ImportNpyParams>>(&sub, "import params JSON (configs/import-npy.json)");
            auto json = std::make_shared<bool>(false);
            auto& c = *pc;
            c.option("--npy", &ImportNpyParams::npy_path, "input .npy array [N, D] (float32/float64/int32/int64)");
            c.option("--ids", &ImportNpyParams::ids_path, "CSV whose rows list the array's rows in order");
            c.option("--id-col", &ImportNpyParams::id_col, "id column of the CSV");
            c.option("--out", &ImportNpyParams::out_path, "output embeddings file (.h5)");
            c.option("--columns", &ImportNpyParams::columns, "metadata columns to keep (default: all but the id column)")
                ->delimiter(',');
            c.flag("--no-columns", &ImportNpyParams::no_columns, "keep no metadata columns");
            sub.add_flag("--json", *json, "print a JSON summary on stdout");
            return [pc, json](const Context&) -> int {
              const ImportNpyParams p = pc->resolve();
              for (auto [v, flag] : {std::pair{&p.npy_path, "--npy"}, {&p.ids_path, "--ids"}, {&p.out_path, "--out"}})
                if (v->empty()) throw_usage("import-npy: {} is required", flag);
              const NpyImportReport r = import_npy(p);
              if (*json)
                print_json({{"out", r.out}, {"rows", r.rows}, {"dim", r.dim}, {"columns", r.columns}});
              else
                spdlog::info("wrote {}: {} x {} embeddings, {} metadata columns", r.out, r.rows, r.dim, r.columns.size());
              return 0;
            };
          }};
}

}  // namespace cl::cli
