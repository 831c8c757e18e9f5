// CSR helpers. Rows keep sorted column indices so lookups and merges are linear.
#include "core/sparse.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace cl {

void CsrMatrix::append_row(const int32_t* cols, const float* vals, int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cols[a] < cols[b]; });
  for (int64_t o : order) {
    if (vals[o] == 0.0f) continue;
    indices.push_back(cols[o]);
    values.push_back(vals[o]);
  }
  indptr.push_back(nnz());
  ++n_rows;
}

void CsrMatrix::append_row_sorted(const int32_t* cols, const float* vals, int64_t n) {
  indices.insert(indices.end(), cols, cols + n);
  values.insert(values.end(), vals, vals + n);
  indptr.push_back(nnz());
  ++n_rows;
}

void CsrMatrix::append_rows(const CsrMatrix& other) {
  CL_ASSERT(other.n_cols == n_cols || n_rows == 0, "append_rows: column count mismatch");
  if (n_rows == 0) n_cols = other.n_cols;
  int64_t base = nnz();
  indices.insert(indices.end(), other.indices.begin(), other.indices.end());
  values.insert(values.end(), other.values.begin(), other.values.end());
  for (int64_t r = 1; r <= other.n_rows; ++r) indptr.push_back(base + other.indptr[static_cast<size_t>(r)]);
  n_rows += other.n_rows;
}

CsrMatrix CsrMatrix::slice_rows(int64_t start, int64_t count) const {
  CL_ASSERT(start >= 0 && count >= 0 && start + count <= n_rows, "slice_rows out of range");
  CsrMatrix m;
  m.n_cols = n_cols;
  m.n_rows = count;
  int64_t a = indptr[static_cast<size_t>(start)], b = indptr[static_cast<size_t>(start + count)];
  m.indices.assign(indices.begin() + a, indices.begin() + b);
  m.values.assign(values.begin() + a, values.begin() + b);
  m.indptr.resize(static_cast<size_t>(count) + 1);
  for (int64_t r = 0; r <= count; ++r) m.indptr[static_cast<size_t>(r)] = indptr[static_cast<size_t>(start + r)] - a;
  return m;
}

CsrMatrix CsrMatrix::take_rows(const std::vector<int64_t>& rows) const {
  CsrMatrix m;
  m.n_cols = n_cols;
  for (int64_t r : rows) {
    CL_ASSERT(r >= 0 && r < n_rows, "take_rows index out of range");
    int64_t a = indptr[static_cast<size_t>(r)], b = indptr[static_cast<size_t>(r) + 1];
    m.append_row_sorted(indices.data() + a, values.data() + a, b - a);
  }
  return m;
}

void CsrMatrix::validate(const std::string& what) const {
  if (static_cast<int64_t>(indptr.size()) != n_rows + 1)
    throw_input("{}: indptr has {} entries, expected {}", what, indptr.size(), n_rows + 1);
  if (indptr.front() != 0) throw_input("{}: indptr[0] = {}, expected 0", what, indptr.front());
  if (indptr.back() != nnz()) throw_input("{}: indptr[-1] = {}, expected nnz {}", what, indptr.back(), nnz());
  if (values.size() != indices.size())
    throw_input("{}: {} values but {} indices", what, values.size(), indices.size());
  for (int64_t r = 0; r < n_rows; ++r) {
    int64_t a = indptr[static_cast<size_t>(r)], b = indptr[static_cast<size_t>(r) + 1];
    if (b < a) throw_input("{}: indptr decreases at row {}", what, r);
    for (int64_t j = a; j < b; ++j) {
      int32_t c = indices[static_cast<size_t>(j)];
      if (c < 0 || c >= n_cols) throw_input("{}: row {} has column index {}, expected 0..{}", what, r, c, n_cols - 1);
      if (j > a && c <= indices[static_cast<size_t>(j) - 1])
        throw_input("{}: row {} column indices not strictly increasing", what, r);
      if (!std::isfinite(values[static_cast<size_t>(j)]))
        throw_input("{}: row {} column {} has non-finite value {}", what, r, c, values[static_cast<size_t>(j)]);
    }
  }
}

}  // namespace cl
