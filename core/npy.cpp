// NumPy .npy reader/writer (format 1.0-3.0). The reader streams the data block straight into
// the result, swaps bytes for big-endian files and transposes Fortran-order arrays to C order,
// so callers always see native, row-major elements.
#include "core/npy.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/atomic_file.h"
#include "core/error.h"

namespace cl {

namespace {

constexpr unsigned char kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

size_t itemsize(NpyDtype d) {
  switch (d) {
    case NpyDtype::f32:
    case NpyDtype::i32:
      return 4;
    case NpyDtype::f64:
    case NpyDtype::i64:
      return 8;
  }
  return 0;
}

const char* dtype_name(NpyDtype d) {
  switch (d) {
    case NpyDtype::f32: return "float32";
    case NpyDtype::f64: return "float64";
    case NpyDtype::i32: return "int32";
    case NpyDtype::i64: return "int64";
  }
  return "?";
}

std::string shape_string(const std::vector<int64_t>& shape) {
  if (shape.empty()) return "()";
  if (shape.size() == 1) return fmt::format("({},)", shape[0]);
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

struct Header {
  NpyDtype dtype = NpyDtype::f32;
  bool big_endian = false;
  bool fortran = false;
  std::vector<int64_t> shape;
  size_t data_offset = 0;
};

// Parser for the Python dict literal of the header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
class DictParser {
 public:
  DictParser(std::string_view s, const std::string& path) : s_(s), path_(path) {}

  Header parse() {
    Header h;
    bool have_descr = false, have_order = false, have_shape = false;
    ws();
    expect('{');
    for (;;) {
      ws();
      if (peek() == '}') break;
      std::string key = str();
      ws();
      expect(':');
      ws();
      if (key == "descr") {
        if (peek() == '[') fail("structured dtype (a list of fields) is not supported");
        set_dtype(h, str());
        have_descr = true;
      } else if (key == "fortran_order") {
        h.fortran = boolean();
        have_order = true;
      } else if (key == "shape") {
        h.shape = tuple();
        have_shape = true;
      } else {
        fail(fmt::format("unexpected header key '{}'", key));
      }
      ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      ws();
      if (peek() != '}') fail("expected ',' or '}'");
    }
    if (!have_descr || !have_order || !have_shape)
      fail("header lacks one of 'descr', 'fortran_order', 'shape'");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw_input("{}: bad .npy header ({}): {}", path_, what, std::string(s_));
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  void expect(char c) {
    if (peek() != c) fail(fmt::format("expected '{}'", c));
    ++i_;
  }
  std::string str() {
    char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    ++i_;
    size_t e = s_.find(q, i_);
    if (e == std::string_view::npos) fail("unterminated string");
    std::string out(s_.substr(i_, e - i_));
    i_ = e + 1;
    return out;
  }
  bool boolean() {
    if (s_.substr(i_, 4) == "True") {
      i_ += 4;
      return true;
    }
    if (s_.substr(i_, 5) == "False") {
      i_ += 5;
      return false;
    }
    fail("expected True or False for 'fortran_order'");
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> out;
    expect('(');
    for (;;) {
      ws();
      if (peek() == ')') {
        ++i_;
        return out;
      }
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected a non-negative integer in 'shape'");
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) fail("dimension too large");
        v = v * 10 + (s_[i_++] - '0');
      }
      if (peek() == 'L') ++i_;  // Python 2 long suffix
      out.push_back(v);
      ws();
      if (peek() == ',') ++i_;
      else if (peek() != ')') fail("expected ',' or ')' in 'shape'");
    }
  }
  void set_dtype(Header& h, const std::string& d) {
    auto unsupported = [&]() {
      throw_input("{}: unsupported dtype '{}' (supported: float32, float64, int32, int64 as '<f4' '<f8' '<i4' '<i8' "
                  "or big-endian '>..')",
                  path_, d);
    };
    if (d.size() != 3) unsupported();
    char order = d[0];
    if (order == '<') h.big_endian = false;
    else if (order == '>') h.big_endian = true;
    else if (order == '=') h.big_endian = std::endian::native == std::endian::big;
    else unsupported();
    std::string t = d.substr(1);
    if (t == "f4") h.dtype = NpyDtype::f32;
    else if (t == "f8") h.dtype = NpyDtype::f64;
    else if (t == "i4") h.dtype = NpyDtype::i32;
    else if (t == "i8") h.dtype = NpyDtype::i64;
    else unsupported();
  }

  std::string_view s_;
  const std::string& path_;
  size_t i_ = 0;
};

uint32_t read_le(const unsigned char* p, int n) {
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Size of the preamble (magic, version, header length field) and the header length, from the
// first 12 bytes (fewer allowed if the file is that short: then it is truncated).
void parse_preamble(const unsigned char* p, size_t avail, const std::string& path, size_t& preamble,
                    size_t& header_len) {
  if (avail < 8 || std::memcmp(p, kMagic, 6) != 0)
    throw_input("{}: not a .npy file (bad magic, expected \\x93NUMPY)", path);
  int major = p[6], minor = p[7];
  if (major == 1) {
    preamble = 10;
  } else if (major == 2 || major == 3) {
    preamble = 12;
  } else {
    throw_input("{}: unsupported .npy format version {}.{} (supported: 1.0, 2.0, 3.0)", path, major, minor);
  }
  if (avail < preamble) throw_input("{}: truncated .npy header ({} bytes)", path, avail);
  header_len = read_le(p + 8, major == 1 ? 2 : 4);
}

Header parse_header_text(const unsigned char* p, size_t len, size_t preamble, const std::string& path) {
  std::string_view text(reinterpret_cast<const char*>(p), len);
  Header h = DictParser(text, path).parse();
  h.data_offset = preamble + len;
  return h;
}

size_t data_bytes(const Header& h, const std::string& path) {
  // 128-bit product so absurd shapes in a corrupt header cannot wrap around to a small size.
  unsigned __int128 n = itemsize(h.dtype);
  for (int64_t d : h.shape) {
    n *= static_cast<uint64_t>(d);
    if (n > (static_cast<unsigned __int128>(1) << 62))
      throw_input("{}: shape {} is too large", path, shape_string(h.shape));
  }
  return static_cast<size_t>(n);
}

void check_size(const Header& h, size_t have, const std::string& path) {
  size_t need = data_bytes(h, path);
  if (have < need)
    throw_input("{}: truncated .npy data: shape {} of {} needs {} bytes, file has {}", path, shape_string(h.shape),
                dtype_name(h.dtype), need, have);
}

void byteswap_all(unsigned char* p, size_t n_items, size_t item) {
  for (size_t i = 0; i < n_items; ++i, p += item) std::reverse(p, p + item);
}

// Fortran-order data -> C order. Walks the C-order output while tracking the Fortran offset.
std::vector<unsigned char> fortran_to_c(const std::vector<unsigned char>& src, const std::vector<int64_t>& shape,
                                        size_t item) {
  const size_t nd = shape.size();
  size_t total = 1;
  for (auto d : shape) total *= static_cast<size_t>(d);
  std::vector<unsigned char> dst(src.size());
  if (total == 0) return dst;
  if (nd == 2) {
    const size_t r = shape[0], c = shape[1];
    // src is [c][r] row-major; blocked transpose keeps both sides cache-friendly.
    constexpr size_t B = 64;
    for (size_t i0 = 0; i0 < r; i0 += B)
      for (size_t j0 = 0; j0 < c; j0 += B)
        for (size_t i = i0; i < std::min(r, i0 + B); ++i)
          for (size_t j = j0; j < std::min(c, j0 + B); ++j)
            std::memcpy(&dst[(i * c + j) * item], &src[(j * r + i) * item], item);
    return dst;
  }
  std::vector<size_t> fstride(nd), idx(nd, 0);
  size_t s = 1;
  for (size_t k = 0; k < nd; ++k) {
    fstride[k] = s;
    s *= static_cast<size_t>(shape[k]);
  }
  size_t off = 0;
  for (size_t out = 0; out < total; ++out) {
    std::memcpy(&dst[out * item], &src[off * item], item);
    for (size_t k = nd; k-- > 0;) {  // odometer over the last (fastest in C) index first
      if (++idx[k] < static_cast<size_t>(shape[k])) {
        off += fstride[k];
        break;
      }
      off -= fstride[k] * (idx[k] - 1);
      idx[k] = 0;
    }
  }
  return dst;
}

NpyArray finish(Header h, std::vector<unsigned char> bytes) {
  NpyArray a;
  a.dtype = h.dtype;
  a.shape = h.shape;
  size_t item = itemsize(h.dtype);
  bool native_big = std::endian::native == std::endian::big;
  if (h.big_endian != native_big) byteswap_all(bytes.data(), bytes.size() / item, item);
  if (h.fortran && h.shape.size() >= 2) bytes = fortran_to_c(bytes, h.shape, item);
  a.bytes = std::move(bytes);
  return a;
}

template <typename T>
constexpr const char* descr_of() {
  constexpr bool big = std::endian::native == std::endian::big;
  if constexpr (std::is_same_v<T, float>) return big ? ">f4" : "<f4";
  else if constexpr (std::is_same_v<T, double>) return big ? ">f8" : "<f8";
  else if constexpr (std::is_same_v<T, int32_t>) return big ? ">i4" : "<i4";
  else return big ? ">i8" : "<i8";
}

template <typename Src, typename T>
void convert(const unsigned char* bytes, size_t n, std::vector<T>& out) {
  out.resize(n);
  const Src* src = reinterpret_cast<const Src*>(bytes);
  if constexpr (std::is_same_v<Src, T>) {
    std::memcpy(out.data(), bytes, n * sizeof(T));
  } else {
    for (size_t i = 0; i < n; ++i) {
      Src v;
      std::memcpy(&v, src + i, sizeof(Src));
      if constexpr (std::is_integral_v<T>) {
        // Float -> int or int64 -> int32 must not wrap silently.
        if constexpr (std::is_floating_point_v<Src>) {
          if (!std::isfinite(v) || v != std::trunc(v) || v < static_cast<Src>(std::numeric_limits<T>::min()) ||
              v > static_cast<Src>(std::numeric_limits<T>::max()))
            throw_input("npy: element {} = {} does not convert to an integer type", i, v);
        } else if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) {
          throw_input("npy: element {} = {} is out of range for int32", i, v);
        }
      }
      out[i] = static_cast<T>(v);
    }
  }
}

}  // namespace

int64_t NpyArray::size() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

template <typename T>
std::vector<T> NpyArray::as() const {
  std::vector<T> out;
  size_t n = static_cast<size_t>(size());
  CL_ASSERT(bytes.size() >= n * itemsize(dtype), "NpyArray: bytes shorter than shape");
  switch (dtype) {
    case NpyDtype::f32: convert<float, T>(bytes.data(), n, out); break;
    case NpyDtype::f64: convert<double, T>(bytes.data(), n, out); break;
    case NpyDtype::i32: convert<int32_t, T>(bytes.data(), n, out); break;
    case NpyDtype::i64: convert<int64_t, T>(bytes.data(), n, out); break;
  }
  return out;
}

template std::vector<float> NpyArray::as<float>() const;
template std::vector<double> NpyArray::as<double>() const;
template std::vector<int32_t> NpyArray::as<int32_t>() const;
template std::vector<int64_t> NpyArray::as<int64_t>() const;

NpyArray parse_npy(const std::vector<unsigned char>& file_bytes, const std::string& path) {
  size_t preamble = 0, hlen = 0;
  parse_preamble(file_bytes.data(), file_bytes.size(), path, preamble, hlen);
  if (file_bytes.size() < preamble + hlen)
    throw_input("{}: truncated .npy header: needs {} bytes, file has {}", path, preamble + hlen, file_bytes.size());
  Header h = parse_header_text(file_bytes.data() + preamble, hlen, preamble, path);
  check_size(h, file_bytes.size() - h.data_offset, path);
  size_t need = data_bytes(h, path);
  std::vector<unsigned char> data(file_bytes.begin() + h.data_offset, file_bytes.begin() + h.data_offset + need);
  return finish(std::move(h), std::move(data));
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_input("{}: cannot open .npy file", path);
  in.seekg(0, std::ios::end);
  const std::streamoff file_size = in.tellg();
  in.seekg(0, std::ios::beg);
  if (file_size < 0) throw_input("{}: cannot read .npy file", path);
  unsigned char pre[12] = {};
  size_t avail = static_cast<size_t>(std::min<std::streamoff>(file_size, 12));
  in.read(reinterpret_cast<char*>(pre), static_cast<std::streamsize>(avail));
  size_t preamble = 0, hlen = 0;
  parse_preamble(pre, avail, path, preamble, hlen);
  if (static_cast<size_t>(file_size) < preamble + hlen)
    throw_input("{}: truncated .npy header: needs {} bytes, file has {}", path, preamble + hlen, file_size);
  std::vector<unsigned char> htext(hlen);
  in.seekg(static_cast<std::streamoff>(preamble));
  in.read(reinterpret_cast<char*>(htext.data()), static_cast<std::streamsize>(hlen));
  if (!in) throw_input("{}: read failed in .npy header", path);
  Header h = parse_header_text(htext.data(), hlen, preamble, path);
  check_size(h, static_cast<size_t>(file_size) - h.data_offset, path);
  std::vector<unsigned char> data(data_bytes(h, path));
  in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (!in && !data.empty()) throw_input("{}: read failed in .npy data", path);
  return finish(std::move(h), std::move(data));
}

template <typename T>
void write_npy(const std::string& path, const T* data, const std::vector<int64_t>& shape,
               const std::vector<std::string>& inputs) {
  for (auto d : shape) CL_ASSERT(d >= 0, "write_npy: negative dimension");
  size_t n = 1;
  for (auto d : shape) n *= static_cast<size_t>(d);
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr_of<T>(),
                                 shape_string(shape));
  // The spec pads the header with spaces and a final '\n' so the data starts on a 64-byte
  // boundary; version 2.0 only when the header outgrows a 16-bit length.
  int major = 1;
  size_t preamble = 10;
  size_t total = preamble + dict.size() + 1;
  size_t padded = (total + 63) / 64 * 64;
  if (padded - preamble > 65535) {
    major = 2;
    preamble = 12;
    total = preamble + dict.size() + 1;
    padded = (total + 63) / 64 * 64;
  }
  size_t hlen = padded - preamble;
  std::string head(reinterpret_cast<const char*>(kMagic), 6);
  head += static_cast<char>(major);
  head += '\0';
  for (size_t i = 0; i < (major == 1 ? 2u : 4u); ++i) head += static_cast<char>((hlen >> (8 * i)) & 0xff);
  head += dict;
  head.append(hlen - dict.size() - 1, ' ');
  head += '\n';

  AtomicOutput out(path, inputs);
  {
    std::ofstream f(out.temp_path(), std::ios::binary | std::ios::trunc);
    if (!f) throw_input("{}: cannot create file", out.temp_path());
    f.write(head.data(), static_cast<std::streamsize>(head.size()));
    const char* p = reinterpret_cast<const char*>(data);
    size_t bytes = n * sizeof(T);
    constexpr size_t kChunk = size_t{64} << 20;  // write in pieces so a failure stops early
    for (size_t off = 0; off < bytes && f; off += kChunk)
      f.write(p + off, static_cast<std::streamsize>(std::min(kChunk, bytes - off)));
    f.flush();
    if (!f) throw_input("{}: write failed (disk full?)", path);
  }
  out.commit();
}

template void write_npy<float>(const std::string&, const float*, const std::vector<int64_t>&,
                               const std::vector<std::string>&);
template void write_npy<double>(const std::string&, const double*, const std::vector<int64_t>&,
                                const std::vector<std::string>&);
template void write_npy<int32_t>(const std::string&, const int32_t*, const std::vector<int64_t>&,
                                 const std::vector<std::string>&);
template void write_npy<int64_t>(const std::string&, const int64_t*, const std::vector<int64_t>&,
                                 const std::vector<std::string>&);

}  // namespace cl
