// Manifests (conceptlab.manifest): write-read round trip with relative paths; embeddings and
// activations readers over several parts read exactly the concatenation (row ranges across part
// boundaries, ids, columns, config); the errors for parts that do not belong together.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/activations.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/formats.h"
#include "core/h5.h"
#include "core/manifest.h"
#include "tests/test_util.h"

using namespace cl;

namespace {

Embeddings make_embeddings(int64_t first, int64_t n, int64_t dim, bool label_numeric) {
  Embeddings e;
  e.n = n;
  e.dim = dim;
  Column label, site;
  label.name = "label";
  label.numeric = label_numeric;
  site.name = "site";
  for (int64_t i = 0; i < n; ++i) {
    e.ids.push_back("img" + std::to_string(first + i));
    for (int64_t j = 0; j < dim; ++j) e.data.push_back(static_cast<float>((first + i) * 100 + j) * 0.5f);
    if (label_numeric)
      label.numbers.push_back(static_cast<double>((first + i) % 3) + 0.25);
    else
      label.strings.push_back("L" + std::to_string(first + i));
    site.strings.push_back((first + i) % 2 ? "a" : "b");
  }
  e.columns = {label, site};
  e.config = {{"encoder", "enc.pt"}, {"preprocess", {{"size", 224}}}};
  return e;
}

Activations make_activations(int64_t first, int64_t n, int64_t n_latents) {
  Activations a;
  a.acts.n_cols = n_latents;
  for (int64_t i = 0; i < n; ++i) {
    a.ids.push_back("img" + std::to_string(first + i));
    std::vector<int32_t> cols;
    std::vector<float> vals;
    for (int32_t j = 0; j < n_latents; ++j)
      if ((first + i + j) % 3 == 0) cols.push_back(j), vals.push_back(static_cast<float>(first + i) + j * 0.1f);
    a.acts.append_row(cols.data(), vals.data(), static_cast<int64_t>(cols.size()));
  }
  return a;
}

}  // namespace

TEST_CASE("manifest: write-read round trip, relative paths, detection") {
  test::TempDir tmp;
  std::filesystem::create_directories(tmp.path / "parts");
  const auto a = (tmp.path / "parts" / "a.h5").string(), b = (tmp.path / "parts" / "b.h5").string();
  write_embeddings(a, make_embeddings(0, 3, 4, true));
  write_embeddings(b, make_embeddings(3, 2, 4, true));
  const auto m = tmp.file("m.json");
  write_manifest(m, "embeddings", {a, b});
  const auto j = nlohmann::json::parse(test::read_text(m));
  CHECK(j["format"] == "conceptlab.manifest");
  CHECK(j["schema_version"] == 1);
  CHECK(j["files"] == nlohmann::json::array({"parts/a.h5", "parts/b.h5"}));  // relative to the manifest
  const auto r = read_manifest(m);
  CHECK(r.kind == "embeddings");
  REQUIRE(r.files.size() == 2);
  CHECK(std::filesystem::equivalent(r.files[0], a));
  CHECK(std::filesystem::equivalent(r.files[1], b));
  CHECK(is_manifest(m));
  CHECK_FALSE(is_manifest(a));
  CHECK_FALSE(is_manifest(tmp.file("missing.json")));
  CHECK(dataset_format(m) == kEmbeddingsFormat);
  CHECK(dataset_format(a) == kEmbeddingsFormat);
  // A file outside the manifest's folder is stored absolute.
  const auto inner = (tmp.path / "parts" / "m2.json").string();
  write_manifest(inner, "embeddings", {tmp.file("x.h5")});
  CHECK(nlohmann::json::parse(test::read_text(inner))["files"][0] == std::filesystem::absolute(tmp.file("x.h5")).lexically_normal().string());
}

TEST_CASE("manifest: embeddings parts read as their concatenation") {
  test::TempDir tmp;
  const auto a = tmp.file("a.h5"), b = tmp.file("b.h5"), c = tmp.file("c.h5"), m = tmp.file("m.json");
  write_embeddings(a, make_embeddings(0, 7, 5, true));
  write_embeddings(b, make_embeddings(7, 4, 5, false));  // label is text here: the whole column becomes text
  write_embeddings(c, make_embeddings(11, 6, 5, true));
  write_manifest(m, "embeddings", {a, b, c});
  const Embeddings whole = make_embeddings(0, 17, 5, true);
  EmbeddingsReader r(m);
  CHECK(r.rows() == 17);
  CHECK(r.dim() == 5);
  CHECK(r.path() == m);
  CHECK(r.ids() == whole.ids);
  for (int64_t start : {0, 3, 6, 7, 10})
    for (int64_t count : {1, 4, 10}) {
      if (start + count > 17) continue;
      std::vector<float> got(static_cast<size_t>(count * 5));
      r.read_rows(start, count, got.data());
      CHECK(std::equal(got.begin(), got.end(), whole.data.begin() + start * 5));
    }
  CHECK_THROWS_WITH_AS(r.read_rows(15, 3, std::vector<float>(15).data()), doctest::Contains("rows [15, 18) out of range"),
                       InputError);
  const auto cols = r.columns();
  REQUIRE(cols.size() == 2);
  CHECK(cols[0].name == "label");
  CHECK_FALSE(cols[0].numeric);
  REQUIRE(cols[0].strings.size() == 17);
  CHECK(cols[0].strings[1] == "1.25");
  CHECK(cols[0].strings[8] == "L8");
  CHECK(cols[1].strings == whole.columns[1].strings);
  const auto cfg = r.config();
  CHECK(cfg["encoder"] == "enc.pt");
  CHECK(cfg["manifest"]["path"] == m);
  CHECK(cfg["manifest"]["files"].size() == 3);
  const Embeddings e = read_embeddings(m);
  CHECK(e.data == whole.data);
  CHECK(e.ids == whole.ids);
}

TEST_CASE("manifest: activations parts read as their concatenation") {
  test::TempDir tmp;
  const auto a = tmp.file("a.h5"), b = tmp.file("b.h5"), m = tmp.file("m.json");
  write_activations(a, make_activations(0, 9, 6));
  write_activations(b, make_activations(9, 5, 6));
  const auto s = create_manifest(m, {a, b});
  CHECK(s.kind == "activations");
  CHECK(s.n_rows == 14);
  CHECK(s.n_parts == 2);
  const Activations whole = make_activations(0, 14, 6);
  ActivationsReader r(m);
  CHECK(r.rows() == 14);
  CHECK(r.n_latents() == 6);
  CHECK(r.nnz() == static_cast<int64_t>(whole.acts.values.size()));
  CHECK(r.ids() == whole.ids);
  for (int64_t start : {0, 5, 8, 9, 13})
    for (int64_t count : {0, 1, 5}) {
      if (start + count > 14) continue;
      CAPTURE(start);
      CAPTURE(count);
      const CsrMatrix got = r.read_rows(start, count);
      REQUIRE(got.n_rows == count);
      for (int64_t i = 0; i < count; ++i) {
        const auto g0 = got.indptr[i], g1 = got.indptr[i + 1];
        const auto w0 = whole.acts.indptr[start + i], w1 = whole.acts.indptr[start + i + 1];
        REQUIRE(g1 - g0 == w1 - w0);
        for (int64_t q = 0; q < g1 - g0; ++q) {
          CHECK(got.indices[g0 + q] == whole.acts.indices[w0 + q]);
          CHECK(got.values[g0 + q] == whole.acts.values[w0 + q]);
        }
      }
    }
  const Activations all = read_activations(m);
  CHECK(all.acts.indptr == whole.acts.indptr);
  CHECK(all.acts.values == whole.acts.values);
  CHECK(dataset_format(m) == kActivationsFormat);
}

TEST_CASE("manifest: parts that do not belong together are refused by name") {
  test::TempDir tmp;
  const auto a = tmp.file("a.h5"), m = tmp.file("m.json");
  write_embeddings(a, make_embeddings(0, 3, 4, true));
  auto expect = [&](const std::vector<std::string>& files, const std::string& msg) {
    CAPTURE(msg);
    write_manifest(m, "embeddings", files);
    CHECK_THROWS_WITH_AS(EmbeddingsReader{m}, doctest::Contains(msg.c_str()), InputError);
  };
  write_embeddings(tmp.file("dim.h5"), make_embeddings(3, 2, 6, true));
  expect({a, tmp.file("dim.h5")}, "has dim 6");
  write_embeddings(tmp.file("dup.h5"), make_embeddings(2, 2, 4, true));
  expect({a, tmp.file("dup.h5")}, "duplicate id 'img2', in both " + a + " and " + tmp.file("dup.h5"));
  auto other = make_embeddings(3, 2, 4, true);
  other.config["encoder"] = "other.pt";
  write_embeddings(tmp.file("enc.h5"), other);
  expect({a, tmp.file("enc.h5")}, "differ in config 'encoder' (\"enc.pt\" vs \"other.pt\")");
  auto nocol = make_embeddings(3, 2, 4, true);
  nocol.columns.pop_back();
  write_embeddings(tmp.file("cols.h5"), nocol);
  write_manifest(m, "embeddings", {a, tmp.file("cols.h5")});
  CHECK_THROWS_WITH_AS(EmbeddingsReader(m).columns(), doctest::Contains("the parts must have the same columns"),
                       InputError);
  expect({a, tmp.file("missing.h5")}, m + ": part " + tmp.file("missing.h5"));  // the manifest named too

  write_activations(tmp.file("acts.h5"), make_activations(0, 2, 4));
  write_activations(tmp.file("acts8.h5"), make_activations(2, 2, 8));
  write_manifest(m, "activations", {tmp.file("acts.h5"), tmp.file("acts8.h5")});
  CHECK_THROWS_WITH_AS(ActivationsReader{m}, doctest::Contains("has 8 latents"), InputError);
  CHECK_THROWS_WITH_AS(EmbeddingsReader{m}, doctest::Contains("a manifest of activations, expected one of embeddings"),
                       InputError);

  auto bad = [&](const std::string& text, const std::string& msg) {
    CAPTURE(text);
    test::write_text(m, text);
    CHECK_THROWS_WITH_AS(read_manifest(m), doctest::Contains(msg.c_str()), InputError);
  };
  bad("{", "not valid JSON, expected a manifest");
  // A .json that is no JSON object is named as not a manifest, not as "not an HDF5 file".
  test::write_text(tmp.file("list.json"), R"(["a.h5"])");
  CHECK_THROWS_WITH_AS(EmbeddingsReader{tmp.file("list.json")}, doctest::Contains("not a conceptlab manifest"), InputError);
  test::write_text(tmp.file("empty.json"), "");
  CHECK_THROWS_WITH_AS(ActivationsReader{tmp.file("empty.json")}, doctest::Contains("not a conceptlab manifest"),
                       InputError);
  // HDF5 allows a user block before its signature: such a file named .json is still read as HDF5.
  {
    h5::Id fcpl(H5Pcreate(H5P_FILE_CREATE));
    REQUIRE(H5Pset_userblock(fcpl, 512) >= 0);
    h5::Id fid(H5Fcreate(tmp.file("ub.json").c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT));
    REQUIRE(fid.valid());
  }
  CHECK(h5::is_hdf5(tmp.file("ub.json")));
  CHECK_FALSE(h5::is_hdf5(tmp.file("list.json")));
  CHECK_FALSE(h5::is_hdf5(tmp.file("no-such.h5")));
  CHECK(manifest_parts(tmp.file("ub.json"), "embeddings").empty());
  CHECK_THROWS_WITH_AS(EmbeddingsReader{tmp.file("ub.json")}, doctest::Contains("ub.json"), InputError);
  bad(R"({"format": "conceptlab.embeddings", "schema_version": 1})", "'format' is \"conceptlab.embeddings\"");
  bad(R"({"format": "conceptlab.manifest", "schema_version": 2, "kind": "embeddings", "files": ["a.h5"]})",
      "'schema_version' is 2, expected 1");
  bad(R"({"format": "conceptlab.manifest", "schema_version": 1, "kind": "images", "files": ["a.h5"]})",
      "'kind' is \"images\"");
  bad(R"({"format": "conceptlab.manifest", "schema_version": 1, "kind": "embeddings", "files": []})",
      "'files' must be a non-empty list");
  bad(R"({"format": "conceptlab.manifest", "schema_version": 1, "kind": "embeddings", "files": ["a.h5", "./a.h5"]})",
      "'./a.h5' is listed twice");
  test::write_text(tmp.file("inner.json"), R"({"format": "conceptlab.manifest", "schema_version": 1, "kind": "embeddings", "files": ["a.h5"]})");
  bad(R"({"format": "conceptlab.manifest", "schema_version": 1, "kind": "embeddings", "files": ["inner.json"]})",
      "is itself a manifest");

  // Parts imported by import-npy from files of other names belong together: their config names
  // the .npy and ids files read (provenance), which the parts may differ in.
  for (const std::string name : {"i0", "i1"}) {
    auto e = make_embeddings(name == "i0" ? 0 : 3, 3, 4, true);
    e.config = {{"source", "import-npy"}, {"npy", name + ".npy"}, {"ids", name + ".csv"}, {"id_col", "ImageID"}};
    write_embeddings(tmp.file(name + ".h5"), e);
  }
  write_manifest(m, "embeddings", {tmp.file("i0.h5"), tmp.file("i1.h5")});
  CHECK(EmbeddingsReader(m).rows() == 6);

  // A manifest is not a part of another one, and create_manifest says so.
  write_manifest(tmp.file("m1.json"), "embeddings", {a});
  CHECK_THROWS_WITH_AS(create_manifest(tmp.file("m2.json"), {tmp.file("m1.json")}), doctest::Contains("is itself a manifest"),
                       InputError);

  // create_manifest checks before it writes: an existing manifest survives a bad set of parts.
  write_manifest(m, "embeddings", {a});
  const std::string before = test::read_text(m);
  CHECK_THROWS_AS(create_manifest(m, {a, tmp.file("dim.h5")}), InputError);
  CHECK(test::read_text(m) == before);
}
