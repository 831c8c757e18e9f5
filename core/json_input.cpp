// JSON parsing with a nesting limit (see json_input.h).
#include "core/json_input.h"

#include "core/error.h"

namespace cl {

namespace {

struct TooDeep {};

template <typename Input>
nlohmann::json parse_limited(Input&& input, const std::string& source, const std::string& what) {
  const nlohmann::json::parser_callback_t limit = [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth >= kMaxJsonDepth) throw TooDeep{};  // depth counts from 0 at the top value
    return true;
  };
  try {
    return nlohmann::json::parse(std::forward<Input>(input), limit);
  } catch (const TooDeep&) {
    throw_input("{}: JSON nested deeper than {} levels (expected {})", source, kMaxJsonDepth, what);
  } catch (const nlohmann::json::exception& e) {
    throw_input("{}: not valid JSON, expected {} ({})", source, what, e.what());
  }
}

}  // namespace

nlohmann::json parse_json(const std::string& text, const std::string& source, const std::string& what) {
  return parse_limited(text, source, what);
}

nlohmann::json parse_json(std::istream& in, const std::string& source, const std::string& what) {
  return parse_limited(in, source, what);
}

}  // namespace cl
