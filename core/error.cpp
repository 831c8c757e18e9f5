// Implementation of the assertion hook: print file:line and abort so a debugger or core dump
// shows the bug where it happened.
#include "core/error.h"

#include <cstdio>
#include <cstdlib>

namespace cl {

void assert_fail(const char* expr, const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "conceptlab: internal error at %s:%d: assertion '%s' failed%s%s\n", file, line,
               expr, msg.empty() ? "" : ": ", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace cl
