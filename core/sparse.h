// CSR sparse matrix used for SAE activations everywhere (acts_nl = [n_images, n_latents]).
// Column indices are sorted within a row; never densified by library code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cl {

struct CsrMatrix {
  int64_t n_rows = 0, n_cols = 0;
  std::vector<int64_t> indptr{0};  // [n_rows + 1]
  std::vector<int32_t> indices;    // [nnz], sorted within each row
  std::vector<float> values;       // [nnz]

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
};

}  // namespace cl
