// Params structs <-> JSON configs. A config is the params struct as JSON (configs/*.json mirror
// the member initializers field for field); reading one refuses unknown keys at any depth, so a
// misspelt knob is an error instead of a silently ignored default. A top-level "comment" key is
// allowed for notes.
#pragma once

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cl {

// Throws InputError naming `what` and the key path when j has a key that defaults lacks.
void check_known_keys(const nlohmann::json& j, const nlohmann::json& defaults, const std::string& what,
                      const std::string& prefix = "");

// A figure for a JSON report: NaN (undefined, e.g. an AUROC without positives) and infinities,
// which JSON cannot hold, become null.
inline nlohmann::json json_number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

// Reads a JSON file; InputError naming the file when it cannot be opened or parsed.
nlohmann::json load_json_file(const std::string& path);

// j (an object, possibly partial) over the defaults of P.
template <typename P>
P params_from_json(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object()) throw_input("{}: config must be a JSON object, found {}", what, j.type_name());
  nlohmann::json defaults = P{};
  nlohmann::json body = j;
  body.erase("comment");
  check_known_keys(body, defaults, what);
  defaults.merge_patch(body);
  try {
    return defaults.get<P>();
  } catch (const nlohmann::json::exception& e) {
    throw_input("{}: bad config value ({})", what, e.what());
  }
}

template <typename P>
P load_params(const std::string& path) {
  return params_from_json<P>(load_json_file(path), path);
}

}  // namespace cl
