// conceptlab: one binary, a subcommand table. main is the only place that maps errors to exit
// codes: 0 success, 2 bad usage, 1 bad input or failure (one line naming file and value).
#include <cstdio>
#include <iostream>

#include "core/h5.h"
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/progress.h"
#include "tools/command.h"

int main(int argc, char** argv) {
  // Logs go to stderr so --json output on stdout stays one clean object.
  auto logger = spdlog::stderr_color_mt("conceptlab");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S] %v");
  cl::h5::install_fault_guard();  // a libhdf5 fault on a corrupt file becomes exit 1 naming it

  CLI::App app{"conceptlab: concept discovery and interpretability on image embeddings"};
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default();
  bool quiet = false, verbose = false;
  app.add_flag("-q,--quiet", quiet, "no progress lines or info logs");
  app.add_flag("-v,--verbose", verbose, "debug logs");
  app.fallthrough();  // subcommands inherit it: `conceptlab sae train ... -q` works as `conceptlab -q sae train ...`

  std::vector<std::pair<CLI::App*, cl::cli::Runner>> runners;
  for (auto& cmd : cl::cli::all_commands()) {
    CLI::App* sub = app.add_subcommand(cmd.name, cmd.help);
    sub->option_defaults()->always_capture_default();
    runners.emplace_back(sub, cmd.setup(*sub));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  spdlog::set_level(verbose ? spdlog::level::debug : quiet ? spdlog::level::warn : spdlog::level::info);
  cl::TerminalProgress progress(quiet);
  const cl::cli::Context ctx{progress, quiet};

  try {
    for (auto& [sub, run] : runners) {
      if (sub->parsed()) return run(ctx);
    }
    return 2;
  } catch (const cl::UsageError& e) {
    std::fprintf(stderr, "conceptlab: usage error: %s\n", e.what());
    return 2;
  } catch (const cl::InputError& e) {
    std::fprintf(stderr, "conceptlab: error: %s\n", e.what());
    return 1;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "conceptlab: usage error: %s\n", e.what());
    return 2;
  } catch (const cl::Cancelled&) {
    std::fprintf(stderr, "conceptlab: cancelled\n");
    return 130;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "conceptlab: error: %s\n", e.what());
    return 1;
  }
}
