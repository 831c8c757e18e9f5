// The subcommand table: each command is a thin adapter (options -> params struct -> one
// library call -> output). setup() binds options on its CLI11 subcommand and returns the
// runner that main calls once parsing succeeded, with the run's context.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/progress.h"

namespace cl::cli {

// What main hands every command: the progress sink for its long-running library calls
// (a terminal line, silent with --quiet).
struct Context {
  ProgressSink& progress;
  bool quiet = false;
};

using Runner = std::function<int(const Context&)>;

struct Command {
  std::string name;
  std::string help;
  std::function<Runner(CLI::App& sub)> setup;
};

// Prints exactly one JSON object on stdout (the contract of --json).
void print_json(const nlohmann::json& j);

// Every command, in the order `conceptlab --help` lists them.
std::vector<Command> all_commands();

// One factory per command source file in tools/commands/.
Command command_demo();
Command command_demo_data();
Command command_embed();
Command command_sae();
Command command_cbm();
Command command_probe();
Command command_inspect();
Command command_import_npy();
Command command_export_npy();
Command command_merge_embeddings();
Command command_manifest();
Command command_explain();
Command command_intervene();
Command command_run();
// Subcommands that live in a file of their own (sae_sweep.cpp).
Runner setup_sae_sweep(CLI::App* sub);
Runner setup_sae_bench(CLI::App* sub);
#ifdef CONCEPTLAB_HAVE_VIEWER
Command command_view();
#endif

}  // namespace cl::cli
