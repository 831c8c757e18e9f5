// Every JSON input (configs, edit files, manifests, preprocessing files, configs stored in HDF5
// attributes) is parsed here: a nesting limit stops a crafted file before anything recursive
// (key checks, conversions, printing) can overflow the stack on it.
#pragma once

#include <istream>
#include <string>

#include <nlohmann/json.hpp>

namespace cl {

inline constexpr int kMaxJsonDepth = 256;  // levels of nesting; configs use 4, nothing real comes near

// Parses text; InputError naming `source` when it is not valid JSON (`what` says what was
// expected, e.g. "an edit file") or nests deeper than kMaxJsonDepth.
nlohmann::json parse_json(const std::string& text, const std::string& source, const std::string& what = "JSON");
nlohmann::json parse_json(std::istream& in, const std::string& source, const std::string& what = "JSON");

}  // namespace cl
