// Text -> value parsing shared by every reader of user text (CSV cells, labels, id lists), so
// one spelling means the same thing everywhere.
#pragma once

#include <string>
#include <string_view>

namespace cl {

// Spaces, tabs and line ends removed from both ends.
std::string_view trim(std::string_view s);
std::string trim_copy(std::string_view s);

// Full-string decimal number after trimming spaces and tabs: a leading '+' is accepted, "nan"
// (any case) parses as NaN, "inf" is refused so a stray infinity never becomes a number.
bool parse_number(std::string_view s, double& out);

// The shortest text that parses back to v ("1", "0.5", "1e-07"); "" for NaN.
std::string format_number(double v);

}  // namespace cl
