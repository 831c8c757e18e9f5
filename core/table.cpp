// Metadata columns: type inference from CSV text (numeric vs string) and value formatting that
// round-trips through CSV (shortest representation, NaN written as an empty field).
#include "core/table.h"

#include <cmath>
#include <limits>

#include "core/parse.h"

namespace cl {

std::string Column::value_string(size_t i) const {
  if (!numeric) return strings.at(i);
  return format_number(numbers.at(i));
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
