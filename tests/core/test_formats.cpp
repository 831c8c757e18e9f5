// Write-read round trips of every HDF5 format, chunked CSR I/O, and rejection of malformed
// files (truncated, wrong format, newer schema, duplicate ids, NaN, shape mismatches).
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "core/activations.h"
#include "core/atomic_file.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/latent_names.h"
#include "core/vocab.h"
#include "core/inspect.h"
#include "core/linear_model.h"
#include "core/sae_weights.h"
#include "tests/test_util.h"

using namespace cl;
namespace fs = std::filesystem;

namespace {

Embeddings make_embeddings(int64_t n, int64_t dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  Embeddings e;
  e.n = n;
  e.dim = dim;
  for (int64_t i = 0; i < n; ++i) e.ids.push_back("img_" + std::to_string(i));
  e.data.resize(static_cast<size_t>(n * dim));
  for (auto& v : e.data) v = nd(rng);
  e.config = {{"model", "unit-test"}, {"batch", 7}};
  return e;
}

CsrMatrix make_csr(int64_t n, int64_t cols, int per_row, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> col(0, static_cast<int32_t>(cols - 1));
  std::uniform_real_distribution<float> val(0.1f, 3.0f);
  CsrMatrix m;
  m.n_cols = cols;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int32_t> c;
    std::vector<float> v;
    int k = static_cast<int>(i % (per_row + 1));  // includes empty rows
    for (int j = 0; j < k; ++j) {
      int32_t cc = col(rng);
      if (std::find(c.begin(), c.end(), cc) != c.end()) continue;
      c.push_back(cc);
      v.push_back(val(rng));
    }
    m.append_row(c.data(), v.data(), static_cast<int64_t>(c.size()));
  }
  return m;
}

bool csr_equal(const CsrMatrix& a, const CsrMatrix& b) {
  return a.n_rows == b.n_rows && a.n_cols == b.n_cols && a.indptr == b.indptr && a.indices == b.indices &&
         a.values == b.values;
}

// Writes an HDF5 file with arbitrary root attributes, for malformed-header tests.
void write_fake(const std::string& path, const std::string& format, int64_t version) {
  h5::File f = h5::create(path);
  h5::write_attr(f.get(), "format", format);
  h5::write_attr(f.get(), "schema_version", version);
  float x[2] = {1, 2};
  h5::write_dataset<float>(f.get(), "embeddings", x, {1, 2});
  h5::write_strings(f.get(), "ids", {"a"});
}

}  // namespace

TEST_CASE("embeddings: round trip with columns, non-ASCII ids and config") {
  test::TempDir tmp;
  Embeddings e = make_embeddings(37, 5, 1);
  e.ids[3] = "päťient/ü-日本語.jpg";
  e.ids[4] = "with,comma \"quoted\"";
  Column num = make_column("age", std::vector<std::string>(37, "42.5"));
  num.numbers[2] = std::nan("");
  Column str;
  str.name = "diagnosis";
  for (int i = 0; i < 37; ++i) str.strings.push_back(i % 2 ? "melanoma" : "névus");
  e.columns = {num, str};
  std::string path = tmp.file("e.h5");
  write_embeddings(path, e);
  Embeddings r = read_embeddings(path);
  CHECK(r.n == 37);
  CHECK(r.dim == 5);
  CHECK(r.ids == e.ids);
  CHECK(r.data == e.data);
  CHECK(r.config == e.config);
  REQUIRE(r.columns.size() == 2);
  const Column* age = find_column(r.columns, "age");
  REQUIRE(age);
  CHECK(age->numeric);
  CHECK(age->numbers[0] == 42.5);
  CHECK(std::isnan(age->numbers[2]));
  const Column* dx = find_column(r.columns, "diagnosis");
  REQUIRE(dx);
  CHECK_FALSE(dx->numeric);
  CHECK(dx->strings == str.strings);
  auto s = inspect_file(path);
  CHECK(s["format"] == "conceptlab.embeddings");
  CHECK(s["datasets"]["embeddings"]["shape"] == nlohmann::json::array({37, 5}));
  // No temp files left behind.
  int n_files = 0;
  for (auto& p : fs::directory_iterator(tmp.path)) n_files += p.is_regular_file();
  CHECK(n_files == 1);
}

TEST_CASE("embeddings: empty and one-row files") {
  test::TempDir tmp;
  for (int64_t n : {0, 1}) {
    Embeddings e = make_embeddings(n, 8, 2);
    std::string path = tmp.file("e" + std::to_string(n) + ".h5");
    write_embeddings(path, e);
    Embeddings r = read_embeddings(path);
    CHECK(r.n == n);
    CHECK(r.dim == 8);
    CHECK(r.data == e.data);
    CHECK(r.ids == e.ids);
  }
}

TEST_CASE("embeddings: streaming writer and row-range reader agree with whole-file I/O") {
  test::TempDir tmp;
  Embeddings e = make_embeddings(1000, 33, 3);
  std::string path = tmp.file("s.h5");
  {
    EmbeddingsWriter w(path, 33, e.config);
    for (int64_t s = 0; s < 1000; s += 300) {
      int64_t c = std::min<int64_t>(300, 1000 - s);
      std::vector<std::string> ids(e.ids.begin() + s, e.ids.begin() + s + c);
      w.append(e.data.data() + s * 33, c, ids);
    }
    CHECK_FALSE(fs::exists(path));  // only the temp file exists until commit
    w.commit();
  }
  EmbeddingsReader r(path);
  CHECK(r.rows() == 1000);
  std::vector<float> buf(static_cast<size_t>(77 * 33));
  r.read_rows(450, 77, buf.data());
  CHECK(std::equal(buf.begin(), buf.end(), e.data.begin() + 450 * 33));
  CHECK_THROWS_AS(r.read_rows(990, 20, buf.data()), InputError);
}

TEST_CASE("embeddings: writer rejects duplicates and NaN, and leaves no file") {
  test::TempDir tmp;
  std::string path = tmp.file("bad.h5");
  Embeddings e = make_embeddings(4, 3, 4);
  e.ids[2] = e.ids[0];
  CHECK_THROWS_WITH_AS(write_embeddings(path, e), doctest::Contains("duplicate id 'img_0'"), InputError);
  CHECK_FALSE(fs::exists(path));
  e = make_embeddings(4, 3, 4);
  e.data[7] = std::nanf("");
  CHECK_THROWS_WITH_AS(write_embeddings(path, e), doctest::Contains("NaN"), InputError);
  CHECK(fs::is_empty(tmp.path));
}

TEST_CASE("embeddings: reader names file, row and id for NaN/Inf") {
  test::TempDir tmp;
  std::string path = tmp.file("nan.h5");
  {
    // Written through the raw HDF5 layer: the format writer refuses NaN.
    h5::File f = h5::create(path);
    h5::write_header(f, kEmbeddingsFormat, "{}");
    float x[6] = {1, 2, 3, 4, INFINITY, 6};
    h5::write_dataset<float>(f.get(), "embeddings", x, {2, 3});
    h5::write_strings(f.get(), "ids", {"a", "b"});
  }
  CHECK_THROWS_WITH_AS(read_embeddings(path), doctest::Contains("row 1 (id 'b') has Inf"), InputError);
  CHECK_THROWS_WITH_AS(read_embeddings(path), doctest::Contains("nan.h5"), InputError);
  CHECK(read_embeddings(path, false).n == 2);
}

TEST_CASE("embeddings: reader rejects duplicate ids and id/row mismatch") {
  test::TempDir tmp;
  std::string dup = tmp.file("dup.h5"), mis = tmp.file("mis.h5");
  {
    h5::File f = h5::create(dup);
    h5::write_header(f, kEmbeddingsFormat, "{}");
    float x[4] = {1, 2, 3, 4};
    h5::write_dataset<float>(f.get(), "embeddings", x, {2, 2});
    h5::write_strings(f.get(), "ids", {"same", "same"});
  }
  {
    h5::File f = h5::create(mis);
    h5::write_header(f, kEmbeddingsFormat, "{}");
    float x[4] = {1, 2, 3, 4};
    h5::write_dataset<float>(f.get(), "embeddings", x, {2, 2});
    h5::write_strings(f.get(), "ids", {"a", "b", "c"});
  }
  CHECK_THROWS_WITH_AS(read_embeddings(dup), doctest::Contains("duplicate id 'same'"), InputError);
  CHECK_THROWS_WITH_AS(read_embeddings(mis), doctest::Contains("3 ids for 2 embedding rows"), InputError);
}

TEST_CASE("headers: wrong format, newer schema, missing attributes, truncated and non-HDF5 files") {
  test::TempDir tmp;
  std::string wrong = tmp.file("wrong.h5"), newer = tmp.file("newer.h5"), trunc = tmp.file("trunc.h5"),
              text = tmp.file("text.h5"), none = tmp.file("none.h5");
  write_fake(wrong, "conceptlab.sae", 1);
  write_fake(newer, kEmbeddingsFormat, 2);
  {
    h5::File f = h5::create(none);
    float x[2] = {1, 2};
    h5::write_dataset<float>(f.get(), "embeddings", x, {1, 2});
  }
  write_embeddings(trunc, make_embeddings(2000, 64, 5));
  fs::resize_file(trunc, fs::file_size(trunc) / 2);
  test::write_text(text, "ImageID,label\na,1\n");
  CHECK_THROWS_WITH_AS(read_embeddings(wrong), doctest::Contains("format 'conceptlab.sae', expected 'conceptlab.embeddings'"),
                       InputError);
  CHECK_THROWS_WITH_AS(read_embeddings(newer), doctest::Contains("schema_version 2"), InputError);
  CHECK_THROWS_WITH_AS(read_embeddings(none), doctest::Contains("no root attribute 'format'"), InputError);
  CHECK_THROWS_WITH_AS(read_embeddings(trunc), doctest::Contains("trunc.h5"), InputError);
  CHECK_THROWS_WITH_AS(read_embeddings(text), doctest::Contains("not an HDF5 file"), InputError);
  CHECK_THROWS_WITH_AS(read_embeddings(tmp.file("missing.h5")), doctest::Contains("no such file"), InputError);
  CHECK_THROWS_AS(read_activations(wrong), InputError);
  CHECK_THROWS_AS(read_sae(newer), InputError);
  CHECK_THROWS_AS(read_linear(text), InputError);
}

TEST_CASE("activations: round trip, empty rows, non-ASCII ids") {
  test::TempDir tmp;
  Activations a;
  a.acts = make_csr(50, 300, 6, 7);
  for (int i = 0; i < 50; ++i) a.ids.push_back("id-" + std::to_string(i) + "-é");
  a.config = {{"sae", "x.h5"}};
  std::string path = tmp.file("a.h5");
  write_activations(path, a);
  Activations r = read_activations(path);
  CHECK(r.ids == a.ids);
  CHECK(csr_equal(r.acts, a.acts));
  CHECK(r.config == a.config);
  ActivationsReader rd(path);
  CHECK(rd.n_latents() == 300);
  CHECK(rd.nnz() == a.acts.nnz());
}

TEST_CASE("activations: empty and one-row files") {
  test::TempDir tmp;
  for (int64_t n : {0, 1}) {
    Activations a;
    a.acts = make_csr(n, 16, 3, 8);
    if (n == 1) {
      int32_t c[2] = {3, 9};
      float v[2] = {0.5f, 1.5f};
      a.acts = CsrMatrix{};
      a.acts.n_cols = 16;
      a.acts.append_row(c, v, 2);
    }
    a.acts.n_cols = 16;
    for (int64_t i = 0; i < n; ++i) a.ids.push_back("x" + std::to_string(i));
    std::string path = tmp.file("a" + std::to_string(n) + ".h5");
    write_activations(path, a);
    Activations r = read_activations(path);
    CHECK(r.acts.n_rows == n);
    CHECK(csr_equal(r.acts, a.acts));
  }
}

TEST_CASE("activations: written in several chunks, read back in other chunks") {
  test::TempDir tmp;
  CsrMatrix all = make_csr(1234, 4096, 40, 9);
  std::vector<std::string> ids;
  for (int i = 0; i < 1234; ++i) ids.push_back(std::to_string(i));
  std::string path = tmp.file("chunked.h5");
  {
    ActivationsWriter w(path, 4096, nlohmann::json::object());
    for (int64_t s = 0; s < 1234; s += 100) {
      int64_t c = std::min<int64_t>(100, 1234 - s);
      w.append(std::vector<std::string>(ids.begin() + s, ids.begin() + s + c), all.slice_rows(s, c));
    }
    w.commit();
  }
  ActivationsReader r(path);
  CHECK(r.rows() == 1234);
  CsrMatrix back;
  back.n_cols = 4096;
  for (int64_t s = 0; s < 1234; s += 333) back.append_rows(r.read_rows(s, std::min<int64_t>(333, 1234 - s)));
  CHECK(csr_equal(back, all));
  CHECK(csr_equal(r.read_rows(500, 1), all.slice_rows(500, 1)));
  CHECK(r.ids() == ids);
}

TEST_CASE("activations: writer rejects broken CSR and duplicate ids") {
  test::TempDir tmp;
  std::string path = tmp.file("bad.h5");
  CsrMatrix m;
  m.n_cols = 10;
  int32_t c[2] = {5, 2};
  float v[2] = {1, 2};
  m.append_row_sorted(c, v, 2);  // unsorted on purpose
  {
    ActivationsWriter w(path, 10, {});
    CHECK_THROWS_WITH_AS(w.append({"a"}, m), doctest::Contains("not strictly increasing"), InputError);
    CsrMatrix ok;
    ok.n_cols = 10;
    ok.append_row(c, v, 2);
    w.append({"a"}, ok);
    CHECK_THROWS_WITH_AS(w.append({"a"}, ok), doctest::Contains("duplicate id 'a'"), InputError);
  }
  CHECK_FALSE(fs::exists(path));
  CHECK(fs::is_empty(tmp.path));
}

TEST_CASE("sae weights: round trip and shape checks") {
  test::TempDir tmp;
  SaeWeights w;
  w.arch = "batchtopk";
  w.d_in = 6;
  w.n_latents = 20;
  w.k = 4;
  w.threshold = 0.125;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (int i = 0; i < 120; ++i) w.W_enc.push_back(nd(rng)), w.W_dec.push_back(nd(rng));
  for (int i = 0; i < 20; ++i) w.b_enc.push_back(nd(rng));
  for (int i = 0; i < 6; ++i) w.b_dec.push_back(nd(rng));
  w.config = {{"expansion", 8}};
  w.metrics = {{"fvu", 0.05}};
  std::string path = tmp.file("s.h5");
  write_sae(path, w);
  SaeWeights r = read_sae(path);
  CHECK(r.arch == "batchtopk");
  CHECK(r.k == 4);
  CHECK(r.threshold == 0.125);
  CHECK(r.W_enc == w.W_enc);
  CHECK(r.W_dec == w.W_dec);
  CHECK(r.b_enc == w.b_enc);
  CHECK(r.b_dec == w.b_dec);
  CHECK(r.config == w.config);
  CHECK(r.metrics == w.metrics);
  // The header alone: everything but the weights.
  SaeWeights h = read_sae_header(path);
  CHECK(h.arch == "batchtopk");
  CHECK(h.d_in == 6);
  CHECK(h.n_latents == 20);
  CHECK(h.k == 4);
  CHECK(h.threshold == 0.125);
  CHECK(h.config == w.config);
  CHECK(h.metrics == w.metrics);
  CHECK(h.W_enc.empty());
  CHECK(h.W_dec.empty());
  // A decoder of the wrong shape is named with both shapes.
  std::string bad = tmp.file("bad.h5");
  {
    h5::File f = h5::create(bad);
    h5::write_header(f, kSaeFormat, "{}");
    h5::write_attr(f.get(), "arch", std::string("relu-l1"));
    h5::write_dataset<float>(f.get(), "W_enc", w.W_enc.data(), {6, 20});
    h5::write_dataset<float>(f.get(), "b_enc", w.b_enc.data(), {20});
    h5::write_dataset<float>(f.get(), "W_dec", w.W_dec.data(), {20, 6});
    h5::write_dataset<float>(f.get(), "b_dec", w.b_dec.data(), {5});
  }
  CHECK_THROWS_WITH_AS(read_sae(bad), doctest::Contains("'b_dec' has shape [5], expected [6]"), InputError);
  CHECK_THROWS_WITH_AS(read_sae_header(bad), doctest::Contains("'b_dec' has shape [5], expected [6]"), InputError);
}

TEST_CASE("linear model: binary and multiclass round trips") {
  test::TempDir tmp;
  LinearModel m;
  m.classes = {"benign", "melanoma"};
  m.features = "embeddings";
  m.n_rows = 1;
  m.n_features = 4;
  m.weights = {0.5f, -1.0f, 0.0f, 2.0f};
  m.bias = {0.25f};
  m.metrics = {{"auroc", 0.9}};
  write_linear(tmp.file("b.h5"), m);
  LinearModel r = read_linear(tmp.file("b.h5"));
  CHECK(r.classes == m.classes);
  CHECK(r.weights == m.weights);
  CHECK(r.bias == m.bias);
  CHECK(r.features == "embeddings");
  CHECK(r.metrics == m.metrics);
  m.classes = {"a", "b", "c"};
  CHECK_THROWS_AS(write_linear(tmp.file("c.h5"), m), InputError);  // 3 classes need 3 rows
  m.n_rows = 3;
  m.weights.resize(12, 1.0f);
  m.bias = {1, 2, 3};
  write_linear(tmp.file("c.h5"), m);
  CHECK(read_linear(tmp.file("c.h5")).n_rows == 3);
}

TEST_CASE("atomic output: failure keeps the previous file, inputs are never overwritten") {
  test::TempDir tmp;
  std::string path = tmp.file("out.h5");
  write_embeddings(path, make_embeddings(3, 2, 1));
  auto before = test::read_bytes(path);
  Embeddings bad = make_embeddings(3, 2, 1);
  bad.data[0] = NAN;
  CHECK_THROWS_AS(write_embeddings(path, bad), InputError);
  CHECK(test::read_bytes(path) == before);
  CHECK_THROWS_WITH_AS(write_embeddings(path, make_embeddings(3, 2, 9), {path}),
                       doctest::Contains("would overwrite input"), InputError);
  CHECK(test::read_bytes(path) == before);
  CHECK_THROWS_WITH_AS(AtomicOutput(tmp.file("nodir/x.h5")), doctest::Contains("does not exist"), InputError);
  // A file where the folder should be, and targets that a rename would destroy.
  CHECK_THROWS_WITH_AS(AtomicOutput(path + "/x.h5"), doctest::Contains("is a file, not a folder"), InputError);
  REQUIRE(::mkfifo(tmp.file("pipe").c_str(), 0600) == 0);
  CHECK_THROWS_WITH_AS(AtomicOutput(tmp.file("pipe")), doctest::Contains("not a regular file"), InputError);
  CHECK(std::filesystem::is_fifo(tmp.file("pipe")));
  CHECK_THROWS_WITH_AS(AtomicOutput("/dev/null"), doctest::Contains("not a regular file"), InputError);
}

TEST_CASE("latent names: round trip, lookups, refusal of bad origins and unsorted latents") {
  cl::test::TempDir t;
  cl::LatentNames n;
  n.set({7, "hair", "annotation", 0.91});
  n.set({2, "Hair", "direction", 0.4});
  n.set({5, "ruler", "user", std::nan("")});
  n.set({7, "hair", "annotation", 0.93});  // replaces
  n.config = {{"source", "test"}};
  cl::write_latent_names(t.file("n.h5"), n);
  const auto m = cl::read_latent_names(t.file("n.h5"));
  REQUIRE(m.names.size() == 3);
  CHECK(m.names[0].latent == 2);
  CHECK(m.find(7)->score == 0.93);
  CHECK(std::isnan(m.find(5)->score));
  CHECK(m.find(6) == nullptr);
  CHECK(m.latents_named("HAIR") == std::vector<int64_t>{7, 2});
  CHECK(m.config == n.config);
  {
    cl::h5::File f = cl::h5::create(t.file("bad.h5"));
    cl::h5::write_header(f, cl::kNamesFormat, "{}");
    const std::vector<int64_t> l = {3, 1};
    const std::vector<double> s = {0.5, 0.5};
    cl::h5::write_dataset<int64_t>(f.get(), "latent", l.data(), {2});
    cl::h5::write_strings(f.get(), "name", {"a", "b"});
    cl::h5::write_strings(f.get(), "origin", {"user", "user"});
    cl::h5::write_dataset<double>(f.get(), "score", s.data(), {2});
  }
  CHECK_THROWS_WITH_AS(cl::read_latent_names(t.file("bad.h5")), doctest::Contains("increasing"), cl::InputError);
}

TEST_CASE("vocab: round trip and refusal of duplicate names and zero vectors") {
  cl::test::TempDir t;
  cl::Vocab v;
  v.names = {"hair", "ruler"};
  v.dim = 3;
  v.embeddings = {1, 0, 0, 0, 0.5f, 0.5f};
  cl::write_vocab(t.file("v.h5"), v);
  const auto w = cl::read_vocab(t.file("v.h5"));
  CHECK(w.names == v.names);
  CHECK(w.embeddings == v.embeddings);
  v.names = {"hair", "hair"};
  cl::write_vocab(t.file("d.h5"), v);
  CHECK_THROWS_WITH_AS(cl::read_vocab(t.file("d.h5")), doctest::Contains("duplicate"), cl::InputError);
  v.names = {"hair", "ruler"};
  v.embeddings = {1, 0, 0, 0, 0, 0};
  cl::write_vocab(t.file("z.h5"), v);
  CHECK_THROWS_WITH_AS(cl::read_vocab(t.file("z.h5")), doctest::Contains("zero vector"), cl::InputError);
}
