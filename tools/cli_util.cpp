// Shared CLI helpers: globals, JSON output and config loading.
#include <fstream>
#include <iostream>

#include "core/error.h"
#include "tools/command.h"

namespace cl::cli {

Globals& globals() {
  static Globals g;
  return g;
}

void print_json(const nlohmann::json& j) {
  std::cout << j.dump() << std::endl;
}

nlohmann::json load_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw_input("{}: cannot open config file", path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw_input("{}: not valid JSON ({})", path, e.what());
  }
}

std::vector<Command> all_commands() {
  return {command_demo(),    command_demo_data(),  command_embed(),     command_sae(),        command_cbm(),
          command_probe(),   command_inspect(),    command_import_npy(), command_export_npy()};
}

}  // namespace cl::cli
