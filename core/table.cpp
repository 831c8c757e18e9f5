// Metadata columns: type inference from CSV text (numeric vs string) and value formatting that
// round-trips through CSV (shortest representation, NaN written as an empty field).
#include "core/table.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <string_view>

#include <fmt/format.h>

namespace cl {

namespace {

// Full-string parse of a decimal number; accepts surrounding spaces, a leading '+' and
// nan (any case), rejects inf so a stray "inf" never silently becomes a number.
bool parse_number(std::string_view s, double& out) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, out, std::chars_format::general);
  if (ec != std::errc() || ptr != end) return false;
  return !std::isinf(out);
}

}  // namespace

std::string Column::value_string(size_t i) const {
  if (!numeric) return strings.at(i);
  double v = numbers.at(i);
  if (std::isnan(v)) return "";
  return fmt::format("{}", v);
}

Column make_column(std::string name, const std::vector<std::string>& values) {
  Column c;
  c.name = std::move(name);
  bool numeric = false;  // a column with only empty values stays text: nothing says it is numeric
  std::vector<double> numbers;
  numbers.reserve(values.size());
  bool ok = true;
  for (const auto& v : values) {
    if (v.empty()) {
      numbers.push_back(std::numeric_limits<double>::quiet_NaN());
      continue;
    }
    double d = 0;
    if (!parse_number(v, d)) {
      ok = false;
      break;
    }
    numeric = true;
    numbers.push_back(d);
  }
  if (ok && numeric) {
    c.numeric = true;
    c.numbers = std::move(numbers);
  } else {
    c.numeric = false;
    c.strings = values;
  }
  return c;
}

const Column* find_column(const std::vector<Column>& cols, const std::string& name) {
  for (const auto& c : cols)
    if (c.name == name) return &c;
  return nullptr;
}

}  // namespace cl
