// HDF5 C API wrapper. Every failing call becomes cl::InputError naming the file and object;
// HDF5's automatic error-stack printing is switched off so users see one clear line.
#include "core/h5.h"
#include "core/json_input.h"

#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include <cmath>
#include <cstring>
#include <mutex>
#include <type_traits>

#include "core/error.h"

namespace cl::h5 {
namespace {

// libhdf5 1.10 registers an atexit handler that closes every file still open; a file whose
// close failed (a full disk) is still open then, and closing it again segfaults. Every writer
// closes its files itself, so the handler has nothing else to do: turn it off before the
// library initialises (a static initializer runs before main and before any HDF5 call).
const bool kNoHdf5Atexit = [] {
  H5dont_atexit();
  return true;
}();

// ---- fault guard (see install_fault_guard in h5.h) ----
thread_local char t_guard_path[512];
thread_local int t_guard_depth = 0;
volatile sig_atomic_t g_fault_exit = 1;

void on_fault(int sig) {
  if (t_guard_depth > 0) {
    const char a[] = "conceptlab: error: ";
    const char b[] = ": corrupt HDF5 file (the HDF5 library faulted reading it)\n";
    ssize_t rc = ::write(2, a, sizeof a - 1);
    rc = ::write(2, t_guard_path, std::strlen(t_guard_path));
    rc = ::write(2, b, sizeof b - 1);
    (void)rc;
    _exit(g_fault_exit);
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// Marks the calling thread as inside an HDF5 read of `path` for the fault handler.
class FaultGuard {
 public:
  explicit FaultGuard(const std::string& path) {
    if (t_guard_depth++ == 0) {
      const size_t n = std::min(path.size(), sizeof t_guard_path - 1);
      std::memcpy(t_guard_path, path.data(), n);
      t_guard_path[n] = '\0';
    }
  }
  ~FaultGuard() { --t_guard_depth; }
  FaultGuard(const FaultGuard&) = delete;
  FaultGuard& operator=(const FaultGuard&) = delete;
};

void silence_hdf5() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

template <typename T>
hid_t mem_type() {
  if constexpr (std::is_same_v<T, float>) return H5T_NATIVE_FLOAT;
  else if constexpr (std::is_same_v<T, double>) return H5T_NATIVE_DOUBLE;
  else if constexpr (std::is_same_v<T, int32_t>) return H5T_NATIVE_INT32;
  else if constexpr (std::is_same_v<T, int64_t>) return H5T_NATIVE_INT64;
  else static_assert(sizeof(T) == 0, "unsupported HDF5 element type");
}

// File-side types are fixed little-endian so files are identical across machines.
template <typename T>
hid_t file_type() {
  if constexpr (std::is_same_v<T, float>) return H5T_IEEE_F32LE;
  else if constexpr (std::is_same_v<T, double>) return H5T_IEEE_F64LE;
  else if constexpr (std::is_same_v<T, int32_t>) return H5T_STD_I32LE;
  else if constexpr (std::is_same_v<T, int64_t>) return H5T_STD_I64LE;
}

Id utf8_vlen_type() {
  Id t(H5Tcopy(H5T_C_S1));
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

std::string obj_name(hid_t loc) {
  ssize_t n = H5Iget_name(loc, nullptr, 0);
  if (n <= 0) return "/";
  std::string s(static_cast<size_t>(n), '\0');
  H5Iget_name(loc, s.data(), static_cast<size_t>(n) + 1);
  return s;
}

std::string file_of(hid_t loc) {
  ssize_t n = H5Fget_name(loc, nullptr, 0);
  if (n <= 0) return "<hdf5>";
  std::string s(static_cast<size_t>(n), '\0');
  H5Fget_name(loc, s.data(), static_cast<size_t>(n) + 1);
  return s;
}

Id open_dataset(const File& f, hid_t loc, const std::string& name) {
  if (!exists(loc, name)) throw_input("{}: missing dataset '{}'", f.path, name);
  Id d(H5Dopen2(loc, name.c_str(), H5P_DEFAULT));
  if (!d.valid()) throw_input("{}: cannot open dataset '{}'", f.path, name);
  return d;
}

// A dataset's extent is file metadata, so a corrupted file can claim any size; before anything is
// allocated from it, the bytes it describes must fit in the file (deflate compresses at most
// ~1032:1, so filtered data gets that much room).
void check_extent(const File& f, hid_t d, const std::string& name, const std::vector<hsize_t>& dims,
                  size_t elem_size) {
  hsize_t file_size = 0;
  if (H5Fget_filesize(f.get(), &file_size) < 0) file_size = 0;
  Id dcpl(H5Dget_create_plist(d));
  const bool filtered = dcpl.valid() && H5Pget_nfilters(dcpl) > 0;
  const long double room = static_cast<long double>(file_size) * (filtered ? 1100.0L : 1.0L) + 4096.0L;
  long double bytes = static_cast<long double>(elem_size);
  for (hsize_t x : dims) bytes *= static_cast<long double>(x);
  if (bytes > room)
    throw_input("{}: dataset '{}' claims {:.0f} bytes, more than the file's {} bytes can hold (corrupt file)", f.path,
                name, static_cast<double>(bytes), file_size);
}

}  // namespace

void install_fault_guard() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (const char* e = std::getenv("CONCEPTLAB_HDF5_FAULT_EXIT")) g_fault_exit = std::atoi(e);
    struct sigaction sa {};
    sa.sa_handler = on_fault;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
  });
}

Id& Id::operator=(Id&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Id::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

bool is_hdf5(const std::string& path) {
  silence_hdf5();
  FaultGuard guard(path);
  return H5Fis_hdf5(path.c_str()) > 0;
}

File open_read(const std::string& path) {
  silence_hdf5();
  FaultGuard guard(path);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw_input("{}: no such file", path);
  if (!is_hdf5(path)) throw_input("{}: not an HDF5 file (or truncated)", path);
  Id fid(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!fid.valid()) throw_input("{}: cannot open HDF5 file (truncated or corrupt)", path);
  return File{std::move(fid), path};
}

File create(const std::string& path) {
  silence_hdf5();
  Id fapl(H5Pcreate(H5P_FILE_ACCESS));
  // The 1.10 file format: no 64 KiB attribute limit (configs are JSON text), and every metadata
  // structure (superblock, object headers, heaps, chunk indexes) carries a checksum, so a
  // corrupted file is reported as an error instead of being trusted (libhdf5 1.10 segfaults or
  // loops on corrupted metadata of the older formats). Readable by HDF5 >= 1.10 and h5py on it.
  H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST);
  Id fid(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl));
  if (!fid.valid()) throw_input("{}: cannot create HDF5 file", path);
  return File{std::move(fid), path};
}

void flush(const File& f) {
  // Writes can succeed into HDF5's cache and fail only here (a full disk, a file size limit):
  // a writer must not rename its temp file over the output unless this returned.
  if (H5Fflush(f.get(), H5F_SCOPE_GLOBAL) < 0) throw_input("{}: cannot write (disk full?)", f.path);
}

bool exists(hid_t loc, const std::string& name) {
  silence_hdf5();
  FaultGuard guard(file_of(loc));
  return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0;
}

Id open_group(const File& f, const std::string& name) {
  FaultGuard guard(f.path);
  if (!exists(f.get(), name)) throw_input("{}: missing group '{}'", f.path, name);
  Id g(H5Gopen2(f.get(), name.c_str(), H5P_DEFAULT));
  if (!g.valid()) throw_input("{}: cannot open group '{}'", f.path, name);
  return g;
}

Id create_group(hid_t loc, const std::string& name) {
  Id g(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!g.valid()) throw_input("{}: cannot create group '{}'", file_of(loc), name);
  return g;
}

std::vector<std::string> list_children(hid_t loc) {
  FaultGuard guard(file_of(loc));
  std::vector<std::string> names;
  H5G_info_t info{};
  if (H5Gget_info(loc, &info) < 0) return names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t n = H5Lget_name_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (n < 0) continue;
    std::string s(static_cast<size_t>(n), '\0');
    H5Lget_name_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, i, s.data(), static_cast<size_t>(n) + 1, H5P_DEFAULT);
    names.push_back(s);
  }
  return names;
}

// ---- attributes ----

static void replace_attr(hid_t obj, const std::string& name) {
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
}

// The string type of every string we write (attributes and datasets): fixed-length, NUL-padded,
// UTF-8. Never variable-length: those live in the global heap (see write_attr).
static Id fixed_utf8_type(size_t width) {
  Id t(H5Tcopy(H5T_C_S1));
  H5Tset_size(t, width);
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

void write_attr(hid_t obj, const std::string& name, const std::string& value) {
  // Fixed-length, like the string datasets: a variable-length string lives in the global heap,
  // which carries no checksum and on which libhdf5 1.10 faults or loops when it is corrupted; a
  // fixed-length value lives in the (checksummed) object header or dense attribute storage.
  replace_attr(obj, name);
  if (value.find('\0') != std::string::npos) throw_input("{}: attribute '{}' contains a NUL byte", file_of(obj), name);
  Id t = fixed_utf8_type(std::max<size_t>(value.size(), 1));
  Id space(H5Screate(H5S_SCALAR));
  Id a(H5Acreate2(obj, name.c_str(), t, space, H5P_DEFAULT, H5P_DEFAULT));
  if (!a.valid()) throw_input("{}: cannot write attribute '{}'", file_of(obj), name);
  std::string buf = value.empty() ? std::string(1, '\0') : value;
  if (H5Awrite(a, t, buf.data()) < 0) throw_input("{}: cannot write attribute '{}'", file_of(obj), name);
}

void write_attr(hid_t obj, const std::string& name, int64_t value) {
  replace_attr(obj, name);
  Id space(H5Screate(H5S_SCALAR));
  Id a(H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT));
  if (!a.valid() || H5Awrite(a, H5T_NATIVE_INT64, &value) < 0)
    throw_input("{}: cannot write attribute '{}'", file_of(obj), name);
}

void write_attr(hid_t obj, const std::string& name, double value) {
  replace_attr(obj, name);
  Id space(H5Screate(H5S_SCALAR));
  Id a(H5Acreate2(obj, name.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT));
  if (!a.valid() || H5Awrite(a, H5T_NATIVE_DOUBLE, &value) < 0)
    throw_input("{}: cannot write attribute '{}'", file_of(obj), name);
}

std::optional<std::string> read_attr_string(hid_t obj, const std::string& name) {
  silence_hdf5();
  FaultGuard guard(file_of(obj));
  if (H5Aexists(obj, name.c_str()) <= 0) return std::nullopt;
  Id a(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
  Id ft(H5Aget_type(a));
  if (H5Tget_class(ft) != H5T_STRING) return std::nullopt;
  Id space(H5Aget_space(a));
  if (H5Sget_simple_extent_npoints(space) != 1) return std::nullopt;
  if (H5Tis_variable_str(ft) > 0) {
    Id t = utf8_vlen_type();
    char* p = nullptr;
    if (H5Aread(a, t, &p) < 0) return std::nullopt;
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  // Fixed-length strings (h5py writes numpy bytes this way).
  size_t n = H5Tget_size(ft);
  if (n == 0 || n > (size_t{1} << 28)) return std::nullopt;  // a corrupted size must not allocate gigabytes
  std::string s(n, '\0');
  Id t(H5Tcopy(ft));  // the file's width, padding and character set (UTF-8 does not convert to ASCII)
  if (H5Aread(a, t, s.data()) < 0) return std::nullopt;
  s.resize(strnlen(s.data(), n));
  return s;
}

std::optional<int64_t> read_attr_int(hid_t obj, const std::string& name) {
  silence_hdf5();
  FaultGuard guard(file_of(obj));
  if (H5Aexists(obj, name.c_str()) <= 0) return std::nullopt;
  Id a(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
  Id ft(H5Aget_type(a));
  auto cls = H5Tget_class(ft);
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) return std::nullopt;
  int64_t v = 0;
  if (cls == H5T_FLOAT) {
    double d = 0;
    if (H5Aread(a, H5T_NATIVE_DOUBLE, &d) < 0) return std::nullopt;
    return static_cast<int64_t>(d);
  }
  if (H5Aread(a, H5T_NATIVE_INT64, &v) < 0) return std::nullopt;
  return v;
}

std::optional<double> read_attr_double(hid_t obj, const std::string& name) {
  silence_hdf5();
  FaultGuard guard(file_of(obj));
  if (H5Aexists(obj, name.c_str()) <= 0) return std::nullopt;
  Id a(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
  double d = 0;
  if (H5Aread(a, H5T_NATIVE_DOUBLE, &d) < 0) return std::nullopt;
  return d;
}

// ---- numeric datasets ----

static Id chunked_create_plist(const std::vector<hsize_t>& chunk, bool compress) {
  Id dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
  if (compress) {
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 4);
  }
  return dcpl;
}

template <typename T>
void write_dataset(hid_t loc, const std::string& name, const T* data, const std::vector<int64_t>& dims,
                   bool compress) {
  std::vector<hsize_t> hd(dims.begin(), dims.end());
  Id space(H5Screate_simple(static_cast<int>(hd.size()), hd.data(), nullptr));
  int64_t total = 1;
  for (auto d : dims) total *= d;
  Id dcpl(H5Pcreate(H5P_DATASET_CREATE));
  if (total > 0 && (compress || total * static_cast<int64_t>(sizeof(T)) > (1 << 20))) {
    // Chunk by rows (~1 MiB) so row-range reads touch only what they need.
    std::vector<hsize_t> chunk = hd;
    int64_t row_bytes = static_cast<int64_t>(sizeof(T));
    for (size_t i = 1; i < hd.size(); ++i) row_bytes *= dims[i];
    chunk[0] = static_cast<hsize_t>(std::max<int64_t>(1, std::min<int64_t>(dims[0], (1 << 20) / std::max<int64_t>(row_bytes, 1))));
    dcpl = chunked_create_plist(chunk, compress);
  }
  Id d(H5Dcreate2(loc, name.c_str(), file_type<T>(), space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  if (!d.valid()) throw_input("{}: cannot create dataset '{}'", file_of(loc), name);
  if (total > 0 && H5Dwrite(d, mem_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    throw_input("{}: cannot write dataset '{}' (disk full?)", file_of(loc), name);
}

std::vector<int64_t> dataset_dims(const File& f, hid_t loc, const std::string& name) {
  FaultGuard guard(f.path);
  Id d = open_dataset(f, loc, name);
  Id space(H5Dget_space(d));
  int nd = H5Sget_simple_extent_ndims(space);
  if (nd < 0 || nd > 32) throw_input("{}: dataset '{}' has an unreadable shape (corrupt file)", f.path, name);
  std::vector<hsize_t> hd(static_cast<size_t>(nd));
  if (nd > 0 && H5Sget_simple_extent_dims(space, hd.data(), nullptr) < 0)
    throw_input("{}: dataset '{}' has an unreadable shape (corrupt file)", f.path, name);
  Id t(H5Dget_type(d));
  size_t elem = t.valid() ? H5Tget_size(t) : 0;
  check_extent(f, d, name, hd, std::max<size_t>(elem, 1));
  for (hsize_t x : hd)
    if (x > static_cast<hsize_t>(INT64_MAX)) throw_input("{}: dataset '{}' has an absurd shape", f.path, name);
  return {hd.begin(), hd.end()};
}

std::string dataset_type_name(const File& f, hid_t loc, const std::string& name) {
  FaultGuard guard(f.path);
  Id d = open_dataset(f, loc, name);
  Id t(H5Dget_type(d));
  switch (H5Tget_class(t)) {
    case H5T_FLOAT: return H5Tget_size(t) == 2 ? "float16" : H5Tget_size(t) == 4 ? "float32" : "float64";
    case H5T_INTEGER: return fmt::format("{}int{}", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", 8 * H5Tget_size(t));
    case H5T_STRING: return "string";
    default: return "other";
  }
}

template <typename T>
std::vector<T> read_dataset(const File& f, hid_t loc, const std::string& name, std::vector<int64_t>* dims_out) {
  FaultGuard guard(f.path);
  Id d = open_dataset(f, loc, name);
  Id t(H5Dget_type(d));
  auto cls = H5Tget_class(t);
  bool want_float = std::is_floating_point_v<T>;
  if (!(cls == H5T_FLOAT || cls == H5T_INTEGER) || (want_float != (cls == H5T_FLOAT)))
    throw_input("{}: dataset '{}' has type {}, expected {}", f.path, name, dataset_type_name(f, loc, name),
                want_float ? "float" : "integer");
  auto dims = dataset_dims(f, loc, name);
  int64_t total = 1;
  for (auto x : dims) total *= x;
  std::vector<T> out(static_cast<size_t>(total));
  if (total > 0 && H5Dread(d, mem_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    throw_input("{}: cannot read dataset '{}' (truncated or corrupt file)", f.path, name);
  if (dims_out) *dims_out = dims;
  return out;
}

template <typename T>
void read_rows(const File& f, hid_t loc, const std::string& name, int64_t start, int64_t count, T* out) {
  if (count <= 0) return;
  FaultGuard guard(f.path);
  Id d = open_dataset(f, loc, name);
  Id space(H5Dget_space(d));
  int nd = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<size_t>(nd));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  if (nd < 1 || static_cast<hsize_t>(start + count) > dims[0])
    throw_input("{}: rows [{}, {}) out of range for dataset '{}' with {} rows", f.path, start, start + count, name,
                nd ? dims[0] : 0);
  std::vector<hsize_t> off(static_cast<size_t>(nd), 0), cnt = dims;
  off[0] = static_cast<hsize_t>(start);
  cnt[0] = static_cast<hsize_t>(count);
  H5Sselect_hyperslab(space, H5S_SELECT_SET, off.data(), nullptr, cnt.data(), nullptr);
  Id mem(H5Screate_simple(nd, cnt.data(), nullptr));
  if (H5Dread(d, mem_type<T>(), mem, space, H5P_DEFAULT, out) < 0)
    throw_input("{}: cannot read rows [{}, {}) of '{}' (truncated or corrupt file)", f.path, start, start + count, name);
}

// ---- strings ----

void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& values) {
  // Fixed-length, not variable-length: variable-length strings live in HDF5's global heap, whose
  // collections carry no checksum, and libhdf5 1.10 faults on a corrupted one. Fixed-length
  // strings are plain chunked (and deflated) data: a corrupted chunk is garbage or an error.
  size_t width = 1;
  for (const auto& v : values) {
    if (v.find('\0') != std::string::npos) throw_input("{}: string in '{}' contains a NUL byte", file_of(loc), name);
    width = std::max(width, v.size());
  }
  Id t = fixed_utf8_type(width);
  const hsize_t n = values.size();
  Id space(H5Screate_simple(1, &n, nullptr));
  Id dcpl(H5Pcreate(H5P_DATASET_CREATE));
  if (n > 0) {
    const hsize_t chunk = std::max<hsize_t>(1, std::min<hsize_t>(n, (1u << 20) / width));
    H5Pset_chunk(dcpl, 1, &chunk);
    H5Pset_deflate(dcpl, 4);
  }
  Id d(H5Dcreate2(loc, name.c_str(), t, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  if (!d.valid()) throw_input("{}: cannot create dataset '{}'", file_of(loc), name);
  if (n == 0) return;
  std::vector<char> buf(width * n, '\0');
  for (size_t i = 0; i < values.size(); ++i) std::memcpy(buf.data() + i * width, values[i].data(), values[i].size());
  if (H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
    throw_input("{}: cannot write dataset '{}' (disk full?)", file_of(loc), name);
}

std::vector<std::string> read_strings_rows(const File& f, hid_t loc, const std::string& name, int64_t start,
                                           int64_t count) {
  FaultGuard guard(f.path);
  Id d = open_dataset(f, loc, name);
  Id ft(H5Dget_type(d));
  if (H5Tget_class(ft) != H5T_STRING) throw_input("{}: dataset '{}' is not a string dataset", f.path, name);
  Id space(H5Dget_space(d));
  hsize_t n = 0;
  if (H5Sget_simple_extent_ndims(space) != 1) throw_input("{}: dataset '{}' must be 1-D", f.path, name);
  H5Sget_simple_extent_dims(space, &n, nullptr);
  // A variable-length string takes at least a 16-byte heap reference in the file.
  check_extent(f, d, name, {n}, H5Tis_variable_str(ft) > 0 ? 16 : std::max<size_t>(H5Tget_size(ft), 1));
  if (count < 0) count = static_cast<int64_t>(n) - start;
  if (start < 0 || static_cast<hsize_t>(start + count) > n)
    throw_input("{}: rows [{}, {}) out of range for '{}' with {} rows", f.path, start, start + count, name, n);
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(count));
  if (count == 0) return out;
  hsize_t off = static_cast<hsize_t>(start), cnt = static_cast<hsize_t>(count);
  H5Sselect_hyperslab(space, H5S_SELECT_SET, &off, nullptr, &cnt, nullptr);
  Id mem(H5Screate_simple(1, &cnt, nullptr));
  if (H5Tis_variable_str(ft) > 0) {
    Id t = utf8_vlen_type();
    std::vector<char*> ptrs(static_cast<size_t>(count), nullptr);
    if (H5Dread(d, t, mem, space, H5P_DEFAULT, ptrs.data()) < 0)
      throw_input("{}: cannot read strings '{}' (truncated or corrupt file)", f.path, name);
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    H5Dvlen_reclaim(t, mem, H5P_DEFAULT, ptrs.data());
  } else {
    size_t w = H5Tget_size(ft);
    // The file's own type (its width, padding and character set): an ASCII memory type has no
    // conversion path from UTF-8 strings.
    Id t(H5Tcopy(ft));
    std::vector<char> buf(w * static_cast<size_t>(count));
    if (H5Dread(d, t, mem, space, H5P_DEFAULT, buf.data()) < 0)
      throw_input("{}: cannot read strings '{}' (truncated or corrupt file)", f.path, name);
    for (int64_t i = 0; i < count; ++i) {
      const char* p = buf.data() + static_cast<size_t>(i) * w;
      out.emplace_back(p, strnlen(p, w));
    }
  }
  return out;
}

std::vector<std::string> read_strings(const File& f, hid_t loc, const std::string& name) {
  return read_strings_rows(f, loc, name, 0, -1);
}

// ---- appender ----

template <typename T>
Appender<T>::Appender(hid_t loc, const std::string& name, int64_t cols, int64_t chunk_rows, bool one_dim)
    : cols_(cols), one_dim_(one_dim) {
  int nd = one_dim ? 1 : 2;
  hsize_t dims[2] = {0, static_cast<hsize_t>(cols)};
  hsize_t maxd[2] = {H5S_UNLIMITED, static_cast<hsize_t>(cols)};
  hsize_t chunk[2] = {static_cast<hsize_t>(std::max<int64_t>(1, chunk_rows)), static_cast<hsize_t>(std::max<int64_t>(cols, 1))};
  Id space(H5Screate_simple(nd, dims, maxd));
  Id dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_chunk(dcpl, nd, chunk);
  dset_ = Id(H5Dcreate2(loc, name.c_str(), file_type<T>(), space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  if (!dset_.valid()) throw_input("{}: cannot create dataset '{}'", file_of(loc), name);
}

template <typename T>
void Appender<T>::append(const T* rows, int64_t n_rows) {
  if (n_rows <= 0) return;
  int nd = one_dim_ ? 1 : 2;
  hsize_t new_dims[2] = {static_cast<hsize_t>(rows_ + n_rows), static_cast<hsize_t>(cols_)};
  if (H5Dset_extent(dset_, new_dims) < 0) throw_input("{}: cannot extend dataset", file_of(dset_));
  Id space(H5Dget_space(dset_));
  hsize_t off[2] = {static_cast<hsize_t>(rows_), 0};
  hsize_t cnt[2] = {static_cast<hsize_t>(n_rows), static_cast<hsize_t>(cols_)};
  H5Sselect_hyperslab(space, H5S_SELECT_SET, off, nullptr, cnt, nullptr);
  Id mem(H5Screate_simple(nd, cnt, nullptr));
  const herr_t rc = H5Dwrite(dset_, mem_type<T>(), mem, space, H5P_DEFAULT, rows);
  if (rc < 0) throw_input("{}: cannot append to dataset {} (disk full?)", file_of(dset_), obj_name(dset_));
  rows_ += n_rows;
}

uint16_t float_to_half_bits(float f) {
  uint32_t x = 0;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u, abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return static_cast<uint16_t>(sign | (abs > 0x7f800000u ? 0x7e00u : 0x7c00u));  // NaN, Inf
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past 65504: Inf
  if (abs < 0x38800000u) {
    // Below 2^-14: a subnormal half, the implicit bit made explicit, rounded to nearest even.
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // below half of the smallest subnormal
    const uint32_t e = abs >> 23, m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;  // 14 + 23 - 10 - (e - 127) + ... : m >> shift is the subnormal's mantissa
    uint32_t h = m >> shift;
    const uint32_t rest = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  // Normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even; a carry out
  // of the mantissa moves into the exponent, which is the right result (and Inf past 65504).
  uint32_t h = ((abs - 0x38000000u) >> 13);
  const uint32_t rest = abs & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  uint32_t x = 0;
  if (e == 0x1f) {
    x = sign | 0x7f800000u | (m << 13);
  } else if (e != 0) {
    x = sign | ((e + 112u) << 23) | (m << 13);
  } else if (m != 0) {
    const float v = std::ldexp(static_cast<float>(m), -24);  // subnormal: m * 2^-24, exact in float
    std::memcpy(&x, &v, 4);
    x |= sign;
  } else {
    x = sign;
  }
  float f = 0;
  std::memcpy(&f, &x, 4);
  return f;
}

Id half_float_type() {
  Id t(H5Tcopy(H5T_IEEE_F32LE));
  H5Tset_fields(t, 15, 10, 5, 0, 10);
  H5Tset_size(t, 2);
  H5Tset_ebias(t, 15);
  return t;
}

FloatAppender::FloatAppender(hid_t loc, const std::string& name, const std::vector<int64_t>& row_dims,
                             int64_t chunk_rows, bool half)
    : row_dims_(row_dims), half_(half) {
  const int nd = static_cast<int>(row_dims.size()) + 1;
  std::vector<hsize_t> dims(static_cast<size_t>(nd), 0), maxd(static_cast<size_t>(nd)), chunk(static_cast<size_t>(nd));
  maxd[0] = H5S_UNLIMITED;
  chunk[0] = static_cast<hsize_t>(std::max<int64_t>(1, chunk_rows));
  for (size_t i = 0; i < row_dims.size(); ++i) {
    dims[i + 1] = maxd[i + 1] = static_cast<hsize_t>(row_dims[i]);
    chunk[i + 1] = static_cast<hsize_t>(std::max<int64_t>(1, row_dims[i]));
  }
  Id space(H5Screate_simple(nd, dims.data(), maxd.data()));
  Id dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_chunk(dcpl, nd, chunk.data());
  Id half_t = half ? half_float_type() : Id();
  dset_ = Id(H5Dcreate2(loc, name.c_str(), half ? half_t.get() : H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  if (!dset_.valid()) throw_input("{}: cannot create dataset '{}'", file_of(loc), name);
}

void FloatAppender::append(const float* rows, int64_t n_rows) {
  if (n_rows <= 0) return;
  const int nd = static_cast<int>(row_dims_.size()) + 1;
  std::vector<hsize_t> new_dims(static_cast<size_t>(nd)), off(static_cast<size_t>(nd), 0);
  new_dims[0] = static_cast<hsize_t>(rows_ + n_rows);
  for (size_t i = 0; i < row_dims_.size(); ++i) new_dims[i + 1] = static_cast<hsize_t>(row_dims_[i]);
  if (H5Dset_extent(dset_, new_dims.data()) < 0) throw_input("{}: cannot extend dataset", file_of(dset_));
  Id space(H5Dget_space(dset_));
  off[0] = static_cast<hsize_t>(rows_);
  std::vector<hsize_t> cnt = new_dims;
  cnt[0] = static_cast<hsize_t>(n_rows);
  H5Sselect_hyperslab(space, H5S_SELECT_SET, off.data(), nullptr, cnt.data(), nullptr);
  Id mem(H5Screate_simple(nd, cnt.data(), nullptr));
  herr_t rc = 0;
  if (half_) {
    // Converted here, not by HDF5: its float32 -> half conversion (1.10) loses the carry when
    // rounding up to the next power of two (0.99992 is stored as 0.5).
    size_t n = static_cast<size_t>(n_rows);
    for (int64_t dd : row_dims_) n *= static_cast<size_t>(dd);
    std::vector<uint16_t> bits(n);
    for (size_t i = 0; i < n; ++i) bits[i] = float_to_half_bits(rows[i]);
    const Id half_t = half_float_type();
    rc = H5Dwrite(dset_, half_t, mem, space, H5P_DEFAULT, bits.data());
  } else {
    rc = H5Dwrite(dset_, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, rows);
  }
  if (rc < 0) throw_input("{}: cannot append to dataset {} (disk full?)", file_of(dset_), obj_name(dset_));
  rows_ += n_rows;
}

// ---- header ----

nlohmann::json read_attr_json(const File& f, hid_t obj, const std::string& name) {
  auto s = read_attr_string(obj, name);
  if (!s || s->empty()) return nlohmann::json::object();
  return parse_json(*s, fmt::format("{}: attribute '{}'", f.path, name));
}

void write_header(const File& f, const std::string& format, const std::string& config_json) {
  write_attr(f.get(), "format", format);
  write_attr(f.get(), "schema_version", kSchemaVersion);
  write_attr(f.get(), "config", config_json);
}

std::string read_format(const File& f) { return read_attr_string(f.get(), "format").value_or(""); }

void check_header(const File& f, const std::string& expected_format) {
  auto fmt_attr = read_attr_string(f.get(), "format");
  if (!fmt_attr) throw_input("{}: no root attribute 'format', expected '{}'", f.path, expected_format);
  if (*fmt_attr != expected_format)
    throw_input("{}: format '{}', expected '{}'", f.path, *fmt_attr, expected_format);
  auto ver = read_attr_int(f.get(), "schema_version");
  if (!ver) throw_input("{}: no root attribute 'schema_version'", f.path);
  // A float attribute (written by hand from Python) must still be a whole version: 1.7 is not 1.
  if (auto d = read_attr_double(f.get(), "schema_version"); d && *d != static_cast<double>(*ver))
    throw_input("{}: schema_version {}, expected a whole number (this conceptlab reads {})", f.path, *d,
                kSchemaVersion);
  if (*ver > kSchemaVersion || *ver < 1)
    throw_input("{}: schema_version {}, this conceptlab reads {} (upgrade conceptlab)", f.path, *ver, kSchemaVersion);
}

// ---- explicit instantiations ----
#define CL_H5_INST(T)                                                                                        \
  template void write_dataset<T>(hid_t, const std::string&, const T*, const std::vector<int64_t>&, bool);    \
  template std::vector<T> read_dataset<T>(const File&, hid_t, const std::string&, std::vector<int64_t>*);    \
  template void read_rows<T>(const File&, hid_t, const std::string&, int64_t, int64_t, T*);                  \
  template class Appender<T>;
CL_H5_INST(float)
CL_H5_INST(double)
CL_H5_INST(int32_t)
CL_H5_INST(int64_t)

}  // namespace cl::h5
