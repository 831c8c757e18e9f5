// In-memory metadata columns that travel with embeddings (labels, concept flags, splits):
// numeric columns as float64 (NaN = missing), others as UTF-8 strings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cl {

struct Column {
  std::string name;
  bool numeric = false;
  std::vector<double> numbers;       // when numeric
  std::vector<std::string> strings;  // otherwise
  size_t size() const { return numeric ? numbers.size() : strings.size(); }
  std::string value_string(size_t i) const;  // numbers printed shortest round-trip, NaN as ""
};

// Builds a column from text values: numeric when every non-empty value parses as a number.
Column make_column(std::string name, const std::vector<std::string>& values);

const Column* find_column(const std::vector<Column>& cols, const std::string& name);

}  // namespace cl
