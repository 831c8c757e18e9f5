// CSR sparse matrix used for SAE activations everywhere (acts_nl = [n_images, n_latents]).
// Column indices are sorted within a row; never densified by library code. The buffers are laid
// out as Eigen's compressed storage (int32 indices), so view() is an Eigen::Map over them with
// no copy, and to_csc() is Eigen's storage-order conversion: the per-latent view (for each
// latent, the rows where it fires) that retrieval and concept matching need.
// In-memory matrices hold at most 2^31 - 1 non-zeros (16 GiB of payload); files may hold more
// and are read in row chunks.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <Eigen/SparseCore>

namespace cl {

using SparseIndex = int32_t;
inline constexpr int64_t kMaxInMemoryNnz = std::numeric_limits<SparseIndex>::max();

using SparseRowMajor = Eigen::SparseMatrix<float, Eigen::RowMajor, SparseIndex>;
using CscMatrix = Eigen::SparseMatrix<float, Eigen::ColMajor, SparseIndex>;  // [n_rows, n_cols], by column
using CsrView = Eigen::Map<const SparseRowMajor>;

struct CsrMatrix {
  int64_t n_rows = 0, n_cols = 0;
  std::vector<SparseIndex> indptr{0};  // [n_rows + 1]
  std::vector<SparseIndex> indices;    // [nnz], sorted within each row
  std::vector<float> values;           // [nnz]

  int64_t nnz() const { return static_cast<int64_t>(indices.size()); }
  // Appends one row given its (col, value) pairs; sorts them; zero values are kept out.
  void append_row(const int32_t* cols, const float* vals, int64_t n);
  void append_row_sorted(const int32_t* cols, const float* vals, int64_t n);
  // Appends the rows of other (same n_cols).
  void append_rows(const CsrMatrix& other);
  // Rows [start, start+count) as a new matrix.
  CsrMatrix slice_rows(int64_t start, int64_t count) const;
  // Rows picked by index, in the given order.
  CsrMatrix take_rows(const std::vector<int64_t>& rows) const;
  // Throws InputError (prefixed with what) on a broken structure: indptr not monotone,
  // indices out of range or unsorted, non-finite values.
  void validate(const std::string& what) const;

  // Eigen view over the buffers (valid while this matrix is alive and unchanged).
  CsrView view() const;

  // One row's stored entries, for range-for: `for (const auto [col, value] : m.row(r))`.
  struct Entry {
    SparseIndex col;
    float value;
  };
  struct RowIterator {
    const SparseIndex* col;
    const float* value;
    Entry operator*() const { return {*col, *value}; }
    RowIterator& operator++() { return ++col, ++value, *this; }
    bool operator!=(const RowIterator& o) const { return col != o.col; }
  };
  struct RowView {
    RowIterator first, last;
    RowIterator begin() const { return first; }
    RowIterator end() const { return last; }
    int64_t size() const { return last.col - first.col; }
  };
  RowView row(int64_t r) const;
};

// The column-major copy: column j holds the rows where column j is non-zero, rows ascending.
CscMatrix to_csc(const CsrMatrix& m);
// The same for a subset of rows: row i of the result is row rows[i] of m (rows may repeat).
CscMatrix to_csc(const CsrMatrix& m, const std::vector<int64_t>& rows);
// Rows of a column-major matrix, strictly increasing: row i of the result is row rows[i] of m.
// One sequential pass over m (several subsets of one matrix convert it to CSC once).
CscMatrix take_rows(const CscMatrix& m, const std::vector<int64_t>& rows);

// Dense row-major x_nd [n, d] -> CSR keeping the non-zero entries (exact zeros dropped).
CsrMatrix csr_from_dense(const float* x_nd, int64_t n, int64_t d);
// CSR -> dense row-major out_nd [n_rows, n_cols] (zeros elsewhere).
void csr_to_dense(const CsrMatrix& m, float* out_nd);

}  // namespace cl
