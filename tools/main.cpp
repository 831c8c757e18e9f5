// conceptlab: one binary, a subcommand table. main is the only place that maps errors to exit
// codes: 0 success, 2 bad usage, 1 bad input or failure (one line naming file and value).
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <iostream>

#include "core/h5.h"
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/progress.h"
#include "tools/command.h"

namespace {

// CLI11 2.1 converts 64-bit integers with strtoll and keeps the saturated value of an
// out-of-range number (--epochs 99999999999999999999999 became INT64_MAX and ran): every integer
// option of every command is checked here instead.
void check_integer_ranges(CLI::App& app) {
  for (CLI::Option* o : app.get_options()) {
    const std::string type = o->get_type_name();
    if (type != "INT" && type != "UINT") continue;
    const bool is_unsigned = type == "UINT";
    o->check(CLI::Validator(
        [is_unsigned](std::string& s) -> std::string {
          const char* b = s.data();
          const char* e = s.data() + s.size();
          if (b != e && *b == '+') ++b;
          std::from_chars_result r{};
          if (is_unsigned) {
            uint64_t v = 0;
            r = std::from_chars(b, e, v);
          } else {
            int64_t v = 0;
            r = std::from_chars(b, e, v);
          }
          if (r.ec == std::errc::result_out_of_range) return "value " + s + " is out of range";
          return "";
        },
        "", "integer range"));
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) check_integer_ranges(*sub);
}

}  // namespace

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

  check_integer_ranges(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, like every other error (CLI11's own exit() adds a second line).
    std::fprintf(stderr, "conceptlab: usage error: %s (--help lists the options)\n", e.what());
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
