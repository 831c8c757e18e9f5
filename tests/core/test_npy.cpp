// NPY reader/writer: files assembled byte by byte from the format spec (versions 1.0-3.0,
// little/big endian, C/Fortran order, all four dtypes), round trips and malformed files.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/npy.h"
#include "tests/test_util.h"

using namespace cl;
using Bytes = std::vector<unsigned char>;

namespace {

// Magic, version, little-endian header length (u16 for 1.x, u32 otherwise), the dict padded
// with spaces and '\n' to a 64-byte boundary as numpy does, then the data block.
Bytes make_npy(int major, const std::string& dict, const Bytes& data) {
  size_t preamble = major == 1 ? 10 : 12;
  size_t total = (preamble + dict.size() + 1 + 63) / 64 * 64;
  size_t hlen = total - preamble;
  Bytes b = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<unsigned char>(major), 0};
  for (size_t i = 0; i < preamble - 8; ++i) b.push_back(static_cast<unsigned char>((hlen >> (8 * i)) & 0xff));
  b.insert(b.end(), dict.begin(), dict.end());
  b.insert(b.end(), hlen - dict.size() - 1, ' ');
  b.push_back('\n');
  CHECK(b.size() % 64 == 0);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

template <typename T>
Bytes encode(const std::vector<T>& values, bool big_endian) {
  Bytes out;
  for (T v : values) {
    unsigned char tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));  // the test host is little endian (x86/arm64)
    if (big_endian)
      for (size_t i = sizeof(T); i-- > 0;) out.push_back(tmp[i]);
    else
      out.insert(out.end(), tmp, tmp + sizeof(T));
  }
  return out;
}

std::string dict(const std::string& descr, bool fortran, const std::string& shape) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") + ", 'shape': " + shape +
         ", }";
}

std::string npy_error(const Bytes& b, const std::string& path = "x.npy") {
  try {
    parse_npy(b, path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("npy: little-endian float32 C order, version 1.0") {
  std::vector<float> v = {0.f, 1.5f, -2.f, 3.25f, 1e-30f, 7.f};
  auto a = parse_npy(make_npy(1, dict("<f4", false, "(2, 3)"), encode(v, false)), "a.npy");
  CHECK(a.dtype == NpyDtype::f32);
  CHECK(a.shape == std::vector<int64_t>{2, 3});
  CHECK(a.size() == 6);
  CHECK(a.as<float>() == v);
}

TEST_CASE("npy: big-endian headers for all four dtypes") {
  std::vector<double> d = {1.0 / 3.0, -1e300, 42.0, 0.0};
  auto a = parse_npy(make_npy(1, dict(">f8", false, "(4,)"), encode(d, true)), "b.npy");
  CHECK(a.dtype == NpyDtype::f64);
  CHECK(a.as<double>() == d);
  std::vector<float> f = {1.f, -0.5f, 3e10f};
  CHECK(parse_npy(make_npy(1, dict(">f4", false, "(3,)"), encode(f, true)), "b.npy").as<float>() == f);
  std::vector<int32_t> i = {1, -2, 0x01020304, -2147483647 - 1};
  auto ai = parse_npy(make_npy(1, dict(">i4", false, "(2, 2)"), encode(i, true)), "b.npy");
  CHECK(ai.dtype == NpyDtype::i32);
  CHECK(ai.as<int32_t>() == i);
  std::vector<int64_t> l = {int64_t{1} << 40, -3, 0x0102030405060708LL};
  auto al = parse_npy(make_npy(1, dict(">i8", false, "(3,)"), encode(l, true)), "b.npy");
  CHECK(al.dtype == NpyDtype::i64);
  CHECK(al.as<int64_t>() == l);
  // Same values little endian.
  CHECK(parse_npy(make_npy(1, dict("<i8", false, "(3,)"), encode(l, false)), "l.npy").as<int64_t>() == l);
  CHECK(parse_npy(make_npy(1, dict("<i4", false, "(4,)"), encode(i, false)), "l.npy").as<int32_t>() == i);
  CHECK(parse_npy(make_npy(1, dict("<f8", false, "(4,)"), encode(d, false)), "l.npy").as<double>() == d);
}

TEST_CASE("npy: Fortran order is converted to C order") {
  // C-order matrix [[0,1,2],[3,4,5]] stored column by column.
  std::vector<int32_t> fortran = {0, 3, 1, 4, 2, 5};
  auto a = parse_npy(make_npy(1, dict("<i4", true, "(2, 3)"), encode(fortran, false)), "f.npy");
  CHECK(a.shape == std::vector<int64_t>{2, 3});
  CHECK(a.as<int32_t>() == std::vector<int32_t>{0, 1, 2, 3, 4, 5});
  // 3-D, big endian float64: element (i,j,k) = 100i + 10j + k at Fortran offset i + 2j + 6k.
  std::vector<double> f3(2 * 3 * 4), c3(2 * 3 * 4);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) {
        f3[i + 2 * j + 6 * k] = 100 * i + 10 * j + k;
        c3[(i * 3 + j) * 4 + k] = 100 * i + 10 * j + k;
      }
  auto b = parse_npy(make_npy(1, dict(">f8", true, "(2, 3, 4)"), encode(f3, true)), "f3.npy");
  CHECK(b.as<double>() == c3);
  // A large 2-D Fortran array exercises the blocked transpose across block edges.
  const int r = 130, c = 70;
  std::vector<float> fbig(r * c), cbig(r * c);
  for (int i = 0; i < r; ++i)
    for (int j = 0; j < c; ++j) {
      fbig[j * r + i] = static_cast<float>(i * 1000 + j);
      cbig[i * c + j] = static_cast<float>(i * 1000 + j);
    }
  CHECK(parse_npy(make_npy(1, dict("<f4", true, "(130, 70)"), encode(fbig, false)), "fb.npy").as<float>() == cbig);
  // 1-D Fortran is the same as C.
  CHECK(parse_npy(make_npy(1, dict("<i4", true, "(3,)"), encode(std::vector<int32_t>{7, 8, 9}, false)), "f1.npy")
            .as<int32_t>() == std::vector<int32_t>{7, 8, 9});
}

TEST_CASE("npy: versions 2.0 and 3.0 use a 32-bit header length") {
  std::vector<int64_t> v = {5, 6, 7, 8};
  auto a2 = parse_npy(make_npy(2, dict("<i8", false, "(2, 2)"), encode(v, false)), "v2.npy");
  CHECK(a2.as<int64_t>() == v);
  // 3.0: the header is UTF-8; double-quoted keys are valid Python too.
  std::string d3 = "{\"descr\": \">f4\", \"fortran_order\": False, \"shape\": (4,)}";
  auto a3 = parse_npy(make_npy(3, d3, encode(std::vector<float>{1, 2, 3, 4}, true)), "v3.npy");
  CHECK(a3.as<float>() == std::vector<float>{1, 2, 3, 4});
  // Version 1.0 with a hand-written, unaligned header and keys in another order.
  std::string d = "{'shape': (2,), 'fortran_order': False, 'descr': '<f8'}";
  Bytes b = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<unsigned char>(d.size()), 0};
  for (char c : d) b.push_back(static_cast<unsigned char>(c));
  auto data = encode(std::vector<double>{9.5, -1}, false);
  b.insert(b.end(), data.begin(), data.end());
  CHECK(parse_npy(b, "u.npy").as<double>() == std::vector<double>{9.5, -1});
}

TEST_CASE("npy: scalar and zero-length shapes") {
  auto s = parse_npy(make_npy(1, dict("<f8", false, "()"), encode(std::vector<double>{2.5}, false)), "s.npy");
  CHECK(s.shape.empty());
  CHECK(s.size() == 1);
  CHECK(s.as<double>() == std::vector<double>{2.5});
  auto z = parse_npy(make_npy(1, dict("<f4", false, "(0,)"), {}), "z.npy");
  CHECK(z.shape == std::vector<int64_t>{0});
  CHECK(z.size() == 0);
  CHECK(z.as<float>().empty());
  auto z2 = parse_npy(make_npy(1, dict("<f4", true, "(0, 5)"), {}), "z.npy");
  CHECK(z2.shape == std::vector<int64_t>{0, 5});
  CHECK(z2.as<float>().empty());
}

TEST_CASE("npy: as<T> converts between dtypes and refuses lossy integer casts") {
  auto a = parse_npy(make_npy(1, dict("<i8", false, "(3,)"), encode(std::vector<int64_t>{1, -2, 3}, false)), "c.npy");
  CHECK(a.as<double>() == std::vector<double>{1, -2, 3});
  CHECK(a.as<float>() == std::vector<float>{1, -2, 3});
  CHECK(a.as<int32_t>() == std::vector<int32_t>{1, -2, 3});
  auto f = parse_npy(make_npy(1, dict("<f8", false, "(2,)"), encode(std::vector<double>{0.5, 4}, false)), "c.npy");
  CHECK(f.as<float>() == std::vector<float>{0.5f, 4.f});
  CHECK_THROWS_AS(f.as<int64_t>(), InputError);
  auto big = parse_npy(make_npy(1, dict("<i8", false, "(1,)"), encode(std::vector<int64_t>{int64_t{1} << 40}, false)),
                       "c.npy");
  CHECK_THROWS_AS(big.as<int32_t>(), InputError);
  CHECK(big.as<int64_t>() == std::vector<int64_t>{int64_t{1} << 40});
}

TEST_CASE("npy: malformed files give errors naming the file") {
  Bytes good = make_npy(1, dict("<f4", false, "(2, 3)"), encode(std::vector<float>(6, 1.f), false));
  // Truncated data.
  Bytes cut(good.begin(), good.end() - 5);
  std::string e = npy_error(cut, "emb.npy");
  CHECK(e.find("emb.npy") == 0);
  CHECK(e.find("truncated") != std::string::npos);
  CHECK(e.find("24 bytes") != std::string::npos);
  // Truncated header.
  e = npy_error(Bytes(good.begin(), good.begin() + 30), "emb.npy");
  CHECK(e.find("emb.npy") == 0);
  CHECK(e.find("truncated") != std::string::npos);
  CHECK(npy_error(Bytes(good.begin(), good.begin() + 9), "emb.npy").find("emb.npy") == 0);
  // Bad magic.
  Bytes bad = good;
  bad[1] = 'X';
  e = npy_error(bad, "emb.npy");
  CHECK(e.find("emb.npy") == 0);
  CHECK(e.find("magic") != std::string::npos);
  CHECK(npy_error(Bytes{}, "e.npy").find("magic") != std::string::npos);
  // Unsupported version.
  bad = good;
  bad[6] = 4;
  CHECK(npy_error(bad).find("version 4.0") != std::string::npos);
  // Unsupported dtypes are named.
  for (std::string d : {"<f2", "|u1", "<c8", "|b1", "<U10", "O"}) {
    e = npy_error(make_npy(1, dict(d, false, "(2,)"), Bytes(64, 0)), "odd.npy");
    CHECK(e.find("odd.npy") == 0);
    CHECK(e.find("'" + d + "'") != std::string::npos);
    CHECK(e.find("unsupported dtype") != std::string::npos);
  }
  CHECK(npy_error(make_npy(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", Bytes(4, 0)))
            .find("structured") != std::string::npos);
  // Broken header dicts.
  CHECK(npy_error(make_npy(1, "{'descr': '<f4', 'shape': (1,), }", Bytes(4, 0))).find("x.npy") == 0);
  CHECK(npy_error(make_npy(1, dict("<f4", false, "(1, -2)"), Bytes(4, 0))).find("bad .npy header") !=
        std::string::npos);
  CHECK(npy_error(make_npy(1, "not a dict", Bytes(4, 0))).find("bad .npy header") != std::string::npos);
  // Shapes whose byte size would overflow are rejected, not wrapped around.
  CHECK(npy_error(make_npy(1, dict("<f8", false, "(4611686018427387904, 4)"), Bytes(8, 0))).find("too large") !=
        std::string::npos);
  CHECK(npy_error(make_npy(1, dict("<f4", false, "(99999999999999999999,)"), Bytes(8, 0))).find("bad .npy header") !=
        std::string::npos);
}

TEST_CASE("npy: write_npy round trips every dtype through a 64-byte aligned 1.0 header") {
  test::TempDir dir;
  auto check_layout = [](const std::string& path) {
    Bytes b = test::read_bytes(path);
    REQUIRE(b.size() >= 10);
    CHECK(b[6] == 1);
    CHECK(b[7] == 0);
    size_t hlen = b[8] | (b[9] << 8);
    CHECK((10 + hlen) % 64 == 0);
    CHECK(b[10 + hlen - 1] == '\n');
  };
  std::vector<float> f = {1.f, -2.5f, 3e-8f, 4.f, 5.f, 6.f};
  write_npy(dir.file("f.npy"), f.data(), {2, 3});
  check_layout(dir.file("f.npy"));
  auto af = read_npy(dir.file("f.npy"));
  CHECK(af.dtype == NpyDtype::f32);
  CHECK(af.shape == std::vector<int64_t>{2, 3});
  CHECK(af.as<float>() == f);
  std::string text = test::read_text(dir.file("f.npy"));
  CHECK(text.find("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }") == 10);

  std::vector<double> d = {0.1, 0.2};
  write_npy(dir.file("d.npy"), d.data(), {2});
  check_layout(dir.file("d.npy"));
  CHECK(test::read_text(dir.file("d.npy")).find("'shape': (2,)") != std::string::npos);
  CHECK(read_npy(dir.file("d.npy")).as<double>() == d);

  std::vector<int32_t> i = {-1, 2, 3};
  write_npy(dir.file("i.npy"), i.data(), {1, 3, 1});
  auto ai = read_npy(dir.file("i.npy"));
  CHECK(ai.dtype == NpyDtype::i32);
  CHECK(ai.shape == std::vector<int64_t>{1, 3, 1});
  CHECK(ai.as<int32_t>() == i);

  int64_t scalar = -7;
  write_npy(dir.file("s.npy"), &scalar, {});
  check_layout(dir.file("s.npy"));
  auto as = read_npy(dir.file("s.npy"));
  CHECK(as.shape.empty());
  CHECK(as.as<int64_t>() == std::vector<int64_t>{-7});

  write_npy<float>(dir.file("e.npy"), nullptr, {0, 4});
  auto ae = read_npy(dir.file("e.npy"));
  CHECK(ae.shape == std::vector<int64_t>{0, 4});
  CHECK(ae.size() == 0);

  // read_npy reports truncation and missing files with the path.
  Bytes b = test::read_bytes(dir.file("f.npy"));
  b.resize(b.size() - 1);
  test::write_bytes(dir.file("t.npy"), b);
  CHECK_THROWS_WITH_AS(read_npy(dir.file("t.npy")), doctest::Contains("t.npy: truncated"), InputError);
  CHECK_THROWS_WITH_AS(read_npy(dir.file("missing.npy")), doctest::Contains("missing.npy"), InputError);
  // Writing over one of the inputs is refused and leaves it intact.
  CHECK_THROWS_AS(write_npy(dir.file("f.npy"), d.data(), {2}, {dir.file("f.npy")}), InputError);
  CHECK(read_npy(dir.file("f.npy")).as<float>() == f);
}

TEST_CASE("npy: the reference project's arrays in ../shared read as numpy wrote them") {
  std::string dir = test::shared_dir();
  if (dir.empty()) {
    MESSAGE("skip: ../shared absent");
    return;
  }
  auto sum = [](const std::vector<float>& v) {
    double s = 0;
    for (float x : v) s += x;
    return s;
  };
  auto in = read_npy(dir + "/fixtures/seed_sae/inputs.npy");
  CHECK(in.dtype == NpyDtype::f32);
  CHECK(in.shape == std::vector<int64_t>{32, 64});
  CHECK(sum(in.as<float>()) == doctest::Approx(46.9798).epsilon(1e-4));
  auto acts = read_npy(dir + "/fixtures/seed_sae/activations.npy");
  CHECK(acts.shape == std::vector<int64_t>{32, 512});
  auto av = acts.as<float>();
  CHECK(*std::min_element(av.begin(), av.end()) >= 0.f);  // relu output
  CHECK(sum(av) == doctest::Approx(6047.063).epsilon(1e-4));
}
