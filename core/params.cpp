// JSON config helpers: unknown-key check and file loading.
#include "core/params.h"
#include "core/json_input.h"

#include <fstream>

namespace cl {

void check_known_keys(const nlohmann::json& j, const nlohmann::json& defaults, const std::string& what,
                      const std::string& prefix) {
  if (!j.is_object() || !defaults.is_object()) return;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!defaults.contains(it.key())) {
      std::string known;
      for (auto d = defaults.begin(); d != defaults.end(); ++d) known += (known.empty() ? "" : ", ") + d.key();
      throw_input("{}: unknown config key '{}{}' (known: {})", what, prefix, it.key(), known);
    }
    check_known_keys(it.value(), defaults[it.key()], what, prefix + it.key() + ".");
  }
}

nlohmann::json load_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw_input("{}: cannot open config file", path);
  return parse_json(in, path, "a config");
}

}  // namespace cl
