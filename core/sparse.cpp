// CSR helpers. Rows keep sorted column indices so lookups and merges are linear.
#include "core/sparse.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace cl {

namespace {
void push_end(CsrMatrix& m) {
  CL_ASSERT(m.nnz() <= kMaxInMemoryNnz, "CSR matrix above 2^31 - 1 non-zeros");
  m.indptr.push_back(static_cast<SparseIndex>(m.nnz()));
  ++m.n_rows;
}
}  // namespace

void CsrMatrix::append_row(const int32_t* cols, const float* vals, int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cols[a] < cols[b]; });
  for (int64_t o : order) {
    if (vals[o] == 0.0f) continue;
    indices.push_back(cols[o]);
    values.push_back(vals[o]);
  }
  push_end(*this);
}

void CsrMatrix::append_row_sorted(const int32_t* cols, const float* vals, int64_t n) {
  indices.insert(indices.end(), cols, cols + n);
  values.insert(values.end(), vals, vals + n);
  push_end(*this);
}

void CsrMatrix::append_rows(const CsrMatrix& other) {
  CL_ASSERT(other.n_cols == n_cols || n_rows == 0, "append_rows: column count mismatch");
  if (n_rows == 0) n_cols = other.n_cols;
  const int64_t base = nnz();
  CL_ASSERT(base + other.nnz() <= kMaxInMemoryNnz, "CSR matrix above 2^31 - 1 non-zeros");
  indices.insert(indices.end(), other.indices.begin(), other.indices.end());
  values.insert(values.end(), other.values.begin(), other.values.end());
  for (int64_t r = 1; r <= other.n_rows; ++r)
    indptr.push_back(static_cast<SparseIndex>(base + other.indptr[static_cast<size_t>(r)]));
  n_rows += other.n_rows;
}

CsrMatrix CsrMatrix::slice_rows(int64_t start, int64_t count) const {
  CL_ASSERT(start >= 0 && count >= 0 && start + count <= n_rows, "slice_rows out of range");
  CsrMatrix m;
  m.n_cols = n_cols;
  m.n_rows = count;
  const SparseIndex a = indptr[static_cast<size_t>(start)], b = indptr[static_cast<size_t>(start + count)];
  m.indices.assign(indices.begin() + a, indices.begin() + b);
  m.values.assign(values.begin() + a, values.begin() + b);
  m.indptr.resize(static_cast<size_t>(count) + 1);
  for (int64_t r = 0; r <= count; ++r) m.indptr[static_cast<size_t>(r)] = indptr[static_cast<size_t>(start + r)] - a;
  return m;
}

CsrMatrix CsrMatrix::take_rows(const std::vector<int64_t>& rows) const {
  CsrMatrix m;
  m.n_cols = n_cols;
  int64_t total = 0;
  for (int64_t r : rows) {
    CL_ASSERT(r >= 0 && r < n_rows, "take_rows index out of range");
    total += indptr[static_cast<size_t>(r) + 1] - indptr[static_cast<size_t>(r)];
  }
  m.indices.reserve(static_cast<size_t>(total));
  m.values.reserve(static_cast<size_t>(total));
  m.indptr.reserve(rows.size() + 1);
  for (int64_t r : rows) {
    const SparseIndex a = indptr[static_cast<size_t>(r)], b = indptr[static_cast<size_t>(r) + 1];
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
    const SparseIndex a = indptr[static_cast<size_t>(r)], b = indptr[static_cast<size_t>(r) + 1];
    if (b < a) throw_input("{}: indptr decreases at row {}", what, r);
    for (SparseIndex j = a; j < b; ++j) {
      int32_t c = indices[static_cast<size_t>(j)];
      if (c < 0 || c >= n_cols) throw_input("{}: row {} has column index {}, expected 0..{}", what, r, c, n_cols - 1);
      if (j > a && c <= indices[static_cast<size_t>(j) - 1])
        throw_input("{}: row {} column indices not strictly increasing", what, r);
      if (!std::isfinite(values[static_cast<size_t>(j)]))
        throw_input("{}: row {} column {} has non-finite value {}", what, r, c, values[static_cast<size_t>(j)]);
    }
  }
}

CsrView CsrMatrix::view() const {
  CL_ASSERT(static_cast<int64_t>(indptr.size()) == n_rows + 1, "CSR indptr size");
  return CsrView(n_rows, n_cols, nnz(), indptr.data(), indices.data(), values.data());
}

CsrMatrix::RowView CsrMatrix::row(int64_t r) const {
  CL_ASSERT(r >= 0 && r < n_rows, "CSR row out of range");
  const size_t a = static_cast<size_t>(indptr[static_cast<size_t>(r)]), b = static_cast<size_t>(indptr[static_cast<size_t>(r) + 1]);
  return {{indices.data() + a, values.data() + a}, {indices.data() + b, values.data() + b}};
}

CscMatrix to_csc(const CsrMatrix& m) {
  CscMatrix c = m.view();
  c.makeCompressed();
  return c;
}

CscMatrix take_rows(const CscMatrix& m, const std::vector<int64_t>& rows) {
  std::vector<SparseIndex> new_row(static_cast<size_t>(m.rows()), -1);
  for (size_t i = 0; i < rows.size(); ++i) {
    CL_ASSERT(rows[i] >= 0 && rows[i] < m.rows(), "take_rows: row index out of range");
    CL_ASSERT(i == 0 || rows[i] > rows[i - 1], "take_rows: rows must be strictly increasing");
    new_row[static_cast<size_t>(rows[i])] = static_cast<SparseIndex>(i);
  }
  CL_ASSERT(m.isCompressed(), "take_rows: a compressed matrix");
  const SparseIndex* colptr = m.outerIndexPtr();
  const SparseIndex* row = m.innerIndexPtr();
  const float* val = m.valuePtr();
  int64_t nnz = 0;
  for (int64_t q = 0; q < m.nonZeros(); ++q) nnz += new_row[static_cast<size_t>(row[q])] >= 0;
  CscMatrix c(static_cast<int64_t>(rows.size()), m.cols());
  c.resizeNonZeros(nnz);
  SparseIndex* out_ptr = c.outerIndexPtr();
  SparseIndex* out_row = c.innerIndexPtr();
  float* out_val = c.valuePtr();
  SparseIndex at = 0;
  for (int64_t j = 0; j < m.cols(); ++j) {
    out_ptr[j] = at;
    for (SparseIndex q = colptr[j]; q < colptr[j + 1]; ++q) {
      const SparseIndex r = new_row[static_cast<size_t>(row[q])];
      if (r >= 0) out_row[at] = r, out_val[at] = val[q], ++at;
    }
  }
  out_ptr[m.cols()] = at;
  return c;
}

CscMatrix to_csc(const CsrMatrix& m, const std::vector<int64_t>& rows) {
  // Counting sort straight into Eigen's compressed buffers: one pass to count per column, one to
  // fill, no intermediate row copy (this is on the CBM solver's per-split path).
  const int64_t n = static_cast<int64_t>(rows.size());
  int64_t nnz = 0;
  for (int64_t r : rows) {
    CL_ASSERT(r >= 0 && r < m.n_rows, "to_csc: row index out of range");
    nnz += m.indptr[static_cast<size_t>(r) + 1] - m.indptr[static_cast<size_t>(r)];
  }
  CL_ASSERT(nnz <= kMaxInMemoryNnz, "CSC matrix above 2^31 - 1 non-zeros");
  CscMatrix c(n, m.n_cols);
  c.resizeNonZeros(nnz);
  SparseIndex* colptr = c.outerIndexPtr();
  std::fill(colptr, colptr + m.n_cols + 1, 0);
  for (int64_t r : rows)
    for (SparseIndex q = m.indptr[static_cast<size_t>(r)]; q < m.indptr[static_cast<size_t>(r) + 1]; ++q)
      ++colptr[m.indices[static_cast<size_t>(q)] + 1];
  for (int64_t j = 0; j < m.n_cols; ++j) colptr[j + 1] += colptr[j];
  std::vector<SparseIndex> pos(colptr, colptr + m.n_cols);
  SparseIndex* out_row = c.innerIndexPtr();
  float* out_val = c.valuePtr();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = rows[static_cast<size_t>(i)];
    for (SparseIndex q = m.indptr[static_cast<size_t>(r)]; q < m.indptr[static_cast<size_t>(r) + 1]; ++q) {
      const SparseIndex at = pos[static_cast<size_t>(m.indices[static_cast<size_t>(q)])]++;
      out_row[at] = static_cast<SparseIndex>(i);
      out_val[at] = m.values[static_cast<size_t>(q)];
    }
  }
  return c;
}

CsrMatrix csr_from_dense(const float* x_nd, int64_t n, int64_t d) {
  CsrMatrix out;
  out.n_cols = d;
  out.indptr.reserve(static_cast<size_t>(n) + 1);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x_nd + i * d;
    for (int64_t j = 0; j < d; ++j)
      if (row[j] != 0.0f) {
        out.indices.push_back(static_cast<SparseIndex>(j));
        out.values.push_back(row[j]);
      }
    push_end(out);
  }
  return out;
}

void csr_to_dense(const CsrMatrix& m, float* out_nd) {
  std::fill(out_nd, out_nd + m.n_rows * m.n_cols, 0.0f);
  for (int64_t i = 0; i < m.n_rows; ++i) {
    float* row = out_nd + i * m.n_cols;
    for (SparseIndex q = m.indptr[static_cast<size_t>(i)]; q < m.indptr[static_cast<size_t>(i) + 1]; ++q)
      row[m.indices[static_cast<size_t>(q)]] = m.values[static_cast<size_t>(q)];
  }
}

}  // namespace cl
