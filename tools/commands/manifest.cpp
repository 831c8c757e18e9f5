// `conceptlab manifest PARTS... --out M.json`: a multi-file dataset (conceptlab.manifest) that
// every command reading embeddings or activations takes in place of one file; the parts are
// checked as one dataset before the manifest is written.
#include "core/error.h"
#include "core/manifest.h"
#include "core/output_claim.h"
#include "tools/command.h"

namespace cl::cli {

Command command_manifest() {
  return {"manifest", "list embeddings or activations files as one dataset (a manifest any reader takes)",
          [](CLI::App& sub) -> Runner {
            struct Args {
              std::vector<std::string> parts;
              std::string out;
              bool json = false;
            };
            auto a = std::make_shared<Args>();
            sub.add_option("parts", a->parts, "embeddings or activations files, in the order their rows are read")
                ->required();
            sub.add_option("--out", a->out,
                           "output manifest (.json); parts below its folder are stored relative to it, others absolute")
                ->required();
            sub.add_flag("--json", a->json, "print a JSON summary on stdout");
            return [a](const Context&) -> int {
              check_output_path(a->out, a->parts);
              const ManifestSummary s = create_manifest(a->out, a->parts);
              if (a->json)
                print_json({{"out", a->out}, {"kind", s.kind}, {"parts", s.n_parts}, {"rows", s.n_rows}});
              else
                fmt::print("wrote {}: {} rows of {} in {} file{}\n", a->out, s.n_rows, s.kind, s.n_parts,
                           s.n_parts == 1 ? "" : "s");
              return 0;
            };
          }};
}

}  // namespace cl::cli
