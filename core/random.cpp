// Index helpers beside the seeded generator in random.h.
#include "core/random.h"

#include <numeric>

namespace cl {

std::vector<int64_t> iota_indices(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

}  // namespace cl
