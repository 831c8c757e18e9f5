// Thin RAII layer over the HDF5 C API: handles, attributes, typed datasets, UTF-8 string
// datasets and appendable (chunked, unlimited) row datasets. All failures turn
// into cl::InputError naming the file and object, never HDF5's own stack dump.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cl::h5 {

// Owns one hid_t and closes it with the matching H5*close.
class Id {
 public:
  Id() = default;
  explicit Id(hid_t id) : id_(id) {}
  ~Id() { reset(); }
  Id(Id&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Id& operator=(Id&& o) noexcept;
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// A file plus the path used in error messages.
struct File {
  Id id;
  std::string path;
  hid_t get() const { return id.get(); }
};

// libhdf5 1.10 trusts a few file structures that carry no checksum (the global heap behind
// variable-length strings, which our writers no longer use but files from h5py do) and can fault
// on a corrupted one. Once installed (by main, never by a library), a SIGSEGV/SIGBUS raised while a
// reader here is inside an HDF5 call prints "FILE: corrupt HDF5 file (...)" and exits 1 (or
// $CONCEPTLAB_HDF5_FAULT_EXIT, which the fuzz program sets to count these apart); a fault
// anywhere else keeps the default behaviour.
void install_fault_guard();

File open_read(const std::string& path);    // InputError if missing, not HDF5 or truncated
// True when libhdf5 finds an HDF5 signature (at offset 0 or after a user block); false for a
// missing or unreadable file. No InputError: callers use it to choose how to read a file.
bool is_hdf5(const std::string& path);
File create(const std::string& path);       // truncates
void flush(const File& f);  // InputError naming the file when a write failed (disk full?)

bool exists(hid_t loc, const std::string& name);  // link exists (no intermediate groups)
Id open_group(const File& f, const std::string& name);
Id create_group(hid_t loc, const std::string& name);
std::vector<std::string> list_children(hid_t loc);  // in creation/name order

// Attributes on any object.
void write_attr(hid_t obj, const std::string& name, const std::string& value);
void write_attr(hid_t obj, const std::string& name, int64_t value);
void write_attr(hid_t obj, const std::string& name, double value);
std::optional<std::string> read_attr_string(hid_t obj, const std::string& name);
std::optional<int64_t> read_attr_int(hid_t obj, const std::string& name);
std::optional<double> read_attr_double(hid_t obj, const std::string& name);
// A JSON text attribute: {} when absent or empty; InputError naming the file when not JSON.
nlohmann::json read_attr_json(const File& f, hid_t obj, const std::string& name);

// Typed whole-dataset I/O. T in {float, double, int32_t, int64_t}.
template <typename T>
void write_dataset(hid_t loc, const std::string& name, const T* data, const std::vector<int64_t>& dims,
                   bool compress = false);
template <typename T>
std::vector<T> read_dataset(const File& f, hid_t loc, const std::string& name, std::vector<int64_t>* dims = nullptr);
std::vector<int64_t> dataset_dims(const File& f, hid_t loc, const std::string& name);
std::string dataset_type_name(const File& f, hid_t loc, const std::string& name);  // "float32", "string", ...

// Reads rows [start, start+count) of a dataset whose first dimension is rows.
template <typename T>
void read_rows(const File& f, hid_t loc, const std::string& name, int64_t start, int64_t count, T* out);

// UTF-8 strings, 1-D: written fixed-length (the widest value's bytes, NUL-padded, deflated);
// read from fixed- or variable-length datasets (h5py writes variable-length).
void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& values);
std::vector<std::string> read_strings(const File& f, hid_t loc, const std::string& name);
std::vector<std::string> read_strings_rows(const File& f, hid_t loc, const std::string& name, int64_t start,
                                           int64_t count);

// A dataset grown by appending rows: [0, cols] with unlimited first dimension, chunked.
// T in {float, double, int32_t, int64_t}; cols is 1 for vectors (stored 1-D).
template <typename T>
class Appender {
 public:
  Appender(hid_t loc, const std::string& name, int64_t cols, int64_t chunk_rows, bool one_dim);
  void append(const T* rows, int64_t n_rows);
  int64_t rows() const { return rows_; }

 private:
  Id dset_;
  int64_t cols_, rows_ = 0;
  bool one_dim_;
};

// A float dataset grown by appending rows of shape row_dims: [0, row_dims...] with an unlimited
// first dimension and chunk_rows rows per chunk. Rows come as float32 and are stored as float32,
// or as IEEE half (half = true; rounded to nearest even by float_to_half_bits; h5py reads it as
// float16).
class FloatAppender {
 public:
  FloatAppender(hid_t loc, const std::string& name, const std::vector<int64_t>& row_dims, int64_t chunk_rows,
                bool half);
  void append(const float* rows, int64_t n_rows);
  int64_t rows() const { return rows_; }

 private:
  Id dset_;
  std::vector<int64_t> row_dims_;
  int64_t rows_ = 0;
  bool half_ = false;
};
Id half_float_type();  // IEEE binary16, little-endian, laid out as h5py's float16
// IEEE binary16 bits of f rounded to nearest even (overflow to Inf, subnormals kept, NaN stays
// NaN), and back (exact).
uint16_t float_to_half_bits(float f);
float half_bits_to_float(uint16_t h);

// Root-attribute contract of every conceptlab file.
constexpr int64_t kSchemaVersion = 1;
void write_header(const File& f, const std::string& format, const std::string& config_json);
// Checks root `format` == expected and `schema_version` <= kSchemaVersion; throws InputError.
void check_header(const File& f, const std::string& expected_format);
std::string read_format(const File& f);  // "" when absent

}  // namespace cl::h5
