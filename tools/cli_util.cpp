// Shared CLI helpers: JSON output and the command table.
#include <iostream>

#include "tools/command.h"

namespace cl::cli {

void print_json(const nlohmann::json& j) { std::cout << j.dump() << std::endl; }

std::vector<Command> all_commands() {
  return {command_demo(),    command_run(),
#ifdef CONCEPTLAB_HAVE_VIEWER
          command_view(),
#endif
          command_demo_data(), command_embed(),      command_merge_embeddings(), command_manifest(), command_sae(),
          command_cbm(),     command_probe(),     command_explain(),    command_intervene(),
          command_inspect(), command_import_npy(), command_export_npy()};
}

}  // namespace cl::cli
