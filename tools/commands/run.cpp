// `conceptlab run CONFIG.json`: the cached pipeline (tools/pipeline) into a workspace folder.
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/device.h"
#include "core/error.h"
#include "core/params.h"
#include "tools/command.h"
#include "tools/pipeline/pipeline.h"

namespace cl::cli {

Command command_run() {
  return {"run", "the whole pipeline, cached: embed, sae, encode, classify, explain, intervene, bench, report",
          [](CLI::App& sub) -> Runner {
            struct Args {
              std::string config, workspace, force, from, to, device;
              bool json = false;
            };
            auto a = std::make_shared<Args>();
            sub.add_option("config", a->config, "pipeline config JSON (configs/derm7pt.json, configs/pipeline.json)")
                ->required();
            sub.add_option("--workspace", a->workspace, "workspace folder (default: ./NAME for NAME.json)");
            sub.add_option("--force", a->force, "re-run this step and every step after it");
            sub.add_option("--from", a->from, "run from this step (earlier ones must be complete)");
            sub.add_option("--to", a->to, "stop after this step");
            sub.add_option("--device", a->device, "auto | cpu | cuda | cuda:N (default: embed.device of the config)");
            sub.add_flag("--json", a->json, "print the steps and report.json as one JSON object");
            return [a](const Context& ctx) -> int {
              auto p = load_params<pipeline::PipelineParams>(a->config);
              pipeline::resolve_paths(p, std::filesystem::path(a->config).parent_path().string());
              pipeline::RunOptions o;
              o.workspace = a->workspace.empty() ? std::filesystem::path(a->config).stem().string() : a->workspace;
              o.force = a->force, o.from = a->from, o.to = a->to;
              o.device = a->device.empty() ? p.embed.device : a->device;
              try {
                pipeline::validate(p);
              } catch (const UsageError& e) {  // name the file the bad value is in
                throw UsageError(fmt::format("{}: {}", a->config, e.what()));
              }
              init_torch_threads();
              spdlog::info("run: {} -> workspace {}", a->config, o.workspace);
              const auto r = pipeline::run_pipeline(p, o, ctx.progress);
              nlohmann::json steps = nlohmann::json::array();
              for (const auto& s : r.steps) steps.push_back({{"step", s.name}, {"ran", s.ran}, {"seconds", s.seconds}});
              if (a->json) {
                print_json({{"workspace", r.workspace}, {"steps", steps}, {"report", r.report}});
                return 0;
              }
              for (const auto& s : r.steps)
                fmt::print("{:<10} {}\n", s.name, s.ran ? fmt::format("ran in {:.1f} s", s.seconds) : "cached");
              fmt::print("workspace: {}\n  report: {}/report.md (and report.json)\n", r.workspace, r.workspace);
              return 0;
            };
          }};
}

}  // namespace cl::cli
