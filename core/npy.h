// NumPy .npy read/write (format versions 1.0, 2.0, 3.0; float32/float64/int32/int64; little or
// big endian; C or Fortran order) so the reference project's arrays can come in and go out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cl {

enum class NpyDtype { f32, f64, i32, i64 };

struct NpyArray {
  NpyDtype dtype = NpyDtype::f32;
  std::vector<int64_t> shape;
  // Elements in C (row-major) order and native byte order, whatever the file's layout.
  std::vector<unsigned char> bytes;

  int64_t size() const;
  template <typename T>
  std::vector<T> as() const;  // converts to T (float, double, int32_t, int64_t)
};

NpyArray read_npy(const std::string& path);
NpyArray parse_npy(const std::vector<unsigned char>& file_bytes, const std::string& path_for_errors);

// Writes version 1.0 (2.0 if the header needs it), little endian, C order.
template <typename T>
void write_npy(const std::string& path, const T* data, const std::vector<int64_t>& shape,
               const std::vector<std::string>& inputs = {});

}  // namespace cl
