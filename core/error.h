// Error model: bad input throws cl::InputError (exit 1), bad usage throws cl::UsageError
// (exit 2), programmer bugs hit CL_ASSERT (abort with file:line). Library code never exits.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace cl {

// Bad data or files supplied by the user. The message names the file, the value found and
// the value expected, e.g. "embeddings.h5: dim 768, SAE expects 1024".
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Bad command-line usage (conflicting or missing flags).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void throw_input(fmt::format_string<Args...> f, Args&&... args) {
  throw InputError(fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void throw_usage(fmt::format_string<Args...> f, Args&&... args) {
  throw UsageError(fmt::format(f, std::forward<Args>(args)...));
}

[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace cl

// Invariant checks stay on in release builds: they guard against silent corruption of results.
#define CL_ASSERT(cond, ...)                                                        \
  do {                                                                              \
    if (!(cond)) ::cl::assert_fail(#cond, __FILE__, __LINE__, ::std::string{__VA_ARGS__}); \
  } while (0)
