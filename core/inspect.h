// Summary of any conceptlab file (format, version, shapes, config) for `conceptlab inspect`.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace cl {

nlohmann::json inspect_file(const std::string& path);
std::string inspect_text(const nlohmann::json& summary);

}  // namespace cl
