// Hungarian algorithm with row/column potentials (shortest augmenting paths), for rows <= cols;
// more rows than columns are handled on the transposed matrix.
#include "explain/hungarian.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace cl::explain {

namespace {

// rows <= cols. 1-based potentials as in the textbook formulation; p[j] = row matched to column j.
std::vector<int64_t> assign_wide(const std::vector<double>& a, int64_t n, int64_t m) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(static_cast<size_t>(n + 1), 0.0), v(static_cast<size_t>(m + 1), 0.0);
  std::vector<int64_t> p(static_cast<size_t>(m + 1), 0), way(static_cast<size_t>(m + 1), 0);
  auto cost = [&](int64_t i, int64_t j) { return a[static_cast<size_t>((i - 1) * m + (j - 1))]; };
  for (int64_t i = 1; i <= n; ++i) {
    p[0] = i;
    int64_t j0 = 0;
    std::vector<double> minv(static_cast<size_t>(m + 1), inf);
    std::vector<char> used(static_cast<size_t>(m + 1), 0);
    do {
      used[static_cast<size_t>(j0)] = 1;
      const int64_t i0 = p[static_cast<size_t>(j0)];
      double delta = inf;
      int64_t j1 = 0;
      for (int64_t j = 1; j <= m; ++j) {
        if (used[static_cast<size_t>(j)]) continue;
        const double cur = cost(i0, j) - u[static_cast<size_t>(i0)] - v[static_cast<size_t>(j)];
        if (cur < minv[static_cast<size_t>(j)]) minv[static_cast<size_t>(j)] = cur, way[static_cast<size_t>(j)] = j0;
        if (minv[static_cast<size_t>(j)] < delta) delta = minv[static_cast<size_t>(j)], j1 = j;
      }
      CL_ASSERT(j1 > 0, "assignment: no free column (non-finite costs?)");
      for (int64_t j = 0; j <= m; ++j) {
        if (used[static_cast<size_t>(j)]) {
          u[static_cast<size_t>(p[static_cast<size_t>(j)])] += delta;
          v[static_cast<size_t>(j)] -= delta;
        } else {
          minv[static_cast<size_t>(j)] -= delta;
        }
      }
      j0 = j1;
    } while (p[static_cast<size_t>(j0)] != 0);
    do {
      const int64_t j1 = way[static_cast<size_t>(j0)];
      p[static_cast<size_t>(j0)] = p[static_cast<size_t>(j1)];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<int64_t> row_to_col(static_cast<size_t>(n), -1);
  for (int64_t j = 1; j <= m; ++j)
    if (p[static_cast<size_t>(j)] > 0) row_to_col[static_cast<size_t>(p[static_cast<size_t>(j)] - 1)] = j - 1;
  return row_to_col;
}

}  // namespace

std::vector<int64_t> assign_min_cost(const std::vector<double>& cost, int64_t rows, int64_t cols) {
  CL_ASSERT(rows >= 0 && cols >= 0 && static_cast<int64_t>(cost.size()) == rows * cols, "cost shape");
  for (double c : cost) CL_ASSERT(std::isfinite(c), "assignment costs must be finite");
  if (rows == 0) return {};
  if (cols == 0) return std::vector<int64_t>(static_cast<size_t>(rows), -1);
  if (rows <= cols) return assign_wide(cost, rows, cols);
  std::vector<double> t(cost.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[static_cast<size_t>(j * rows + i)] = cost[static_cast<size_t>(i * cols + j)];
  const auto col_to_row = assign_wide(t, cols, rows);
  std::vector<int64_t> out(static_cast<size_t>(rows), -1);
  for (int64_t j = 0; j < cols; ++j)
    if (col_to_row[static_cast<size_t>(j)] >= 0) out[static_cast<size_t>(col_to_row[static_cast<size_t>(j)])] = j;
  return out;
}

std::vector<int64_t> assign_max_score(const std::vector<double>& score, int64_t rows, int64_t cols) {
  std::vector<double> cost(score.size());
  for (size_t i = 0; i < score.size(); ++i) cost[i] = -score[i];
  return assign_min_cost(cost, rows, cols);
}

}  // namespace cl::explain
