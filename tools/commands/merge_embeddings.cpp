// `conceptlab merge-embeddings PARTS... --out E.h5`: the parts of a sharded `embed --shard I/N`
// export -> the file one unsharded run writes (embed::merge_embeddings).
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/output_claim.h"
#include "tools/command.h"
#include "tools/embed/shard.h"

namespace cl::cli {

Command command_merge_embeddings() {
  return {"merge-embeddings", "join the parts of a sharded embed (--shard I/N) into one embeddings file",
          [](CLI::App& sub) -> Runner {
            struct Args {
              std::vector<std::string> parts;
              std::string out;
              bool json = false;
            };
            auto a = std::make_shared<Args>();
            sub.add_option("parts", a->parts, "the N part files (any order)")->required();
            sub.add_option("--out", a->out, "output embeddings .h5")->required();
            sub.add_flag("--json", a->json, "print a JSON summary on stdout");
            return [a](const Context& ctx) -> int {
              check_output_path(a->out, a->parts);
              OutputLock lock(a->out);
              const auto r = embed::merge_embeddings(a->parts, a->out, ctx.progress);
              if (a->json)
                print_json({{"out", r.out}, {"parts", r.n_parts}, {"rows", r.n_rows}, {"dim", r.dim}, {"inputs", r.n_inputs}});
              else
                fmt::print("wrote {}: {} rows x {} from {} parts ({} inputs)\n", r.out, r.n_rows, r.dim, r.n_parts,
                           r.n_inputs);
              return 0;
            };
          }};
}

}  // namespace cl::cli
