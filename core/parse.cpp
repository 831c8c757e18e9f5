// Number parsing with std::from_chars (locale-independent, exact round trip).
#include "core/parse.h"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

namespace cl {

std::string_view trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::string trim_copy(std::string_view s) { return std::string(trim(s)); }

bool parse_number(std::string_view s, double& out) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, out, std::chars_format::general);
  if (ec != std::errc() || ptr != end) return false;
  return !std::isinf(out);
}

std::string format_number(double v) {
  if (std::isnan(v)) return "";
  return fmt::format("{}", v);
}

}  // namespace cl
