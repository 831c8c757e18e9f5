// import-npy / export-npy end to end through the conceptlab binary: round trips, metadata
// columns, activations densified, and bad inputs (exit 1, message naming files and values,
// existing outputs untouched).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "core/activations.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/npy.h"
#include "tests/test_util.h"

using namespace cl;
using cl::test::run_cli;

namespace {

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

const std::string kIdA = "\xC3\xA9t\xC3\xA9_01.jpg";  // non-ASCII UTF-8 id

}  // namespace

TEST_CASE("cli import-npy: npy + ids CSV -> embeddings with metadata columns") {
  test::TempDir dir;
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  write_npy(dir.file("emb.npy"), x.data(), {3, 4});
  test::write_text(dir.file("ids.csv"),
                   "ImageID,label,score\r\n" + kIdA + ",mel,0.5\r\nb,\"nev, common\",\r\nc,bcc,2\r\n");
  auto r = run_cli(
      {"import-npy", "--npy", dir.file("emb.npy"), "--ids", dir.file("ids.csv"), "--out", dir.file("e.h5"), "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["rows"] == 3);
  CHECK(j["dim"] == 4);
  auto e = read_embeddings(dir.file("e.h5"));
  CHECK(e.n == 3);
  CHECK(e.dim == 4);
  CHECK(e.data == x);
  CHECK(e.ids == std::vector<std::string>{kIdA, "b", "c"});
  const Column* label = find_column(e.columns, "label");
  REQUIRE(label);
  CHECK(label->strings == std::vector<std::string>{"mel", "nev, common", "bcc"});
  const Column* score = find_column(e.columns, "score");
  REQUIRE(score);
  REQUIRE(score->numeric);
  CHECK(score->numbers[0] == 0.5);
  CHECK(std::isnan(score->numbers[1]));
  CHECK(e.config["source"] == "import-npy");

  // float64 input, column selection and --no-columns.
  std::vector<double> xd(x.begin(), x.end());
  write_npy(dir.file("emb64.npy"), xd.data(), {3, 4});
  r = run_cli({"-q", "import-npy", "--npy", dir.file("emb64.npy"), "--ids", dir.file("ids.csv"), "--out",
               dir.file("e2.h5"), "--columns", "score"});
  REQUIRE(r.exit_code == 0);
  auto e2 = read_embeddings(dir.file("e2.h5"));
  CHECK(e2.data == x);
  REQUIRE(e2.columns.size() == 1);
  CHECK(e2.columns[0].name == "score");
  r = run_cli({"-q", "import-npy", "--npy", dir.file("emb.npy"), "--ids", dir.file("ids.csv"), "--out",
               dir.file("e3.h5"), "--no-columns"});
  REQUIRE(r.exit_code == 0);
  CHECK(read_embeddings(dir.file("e3.h5")).columns.empty());

  // pandas' to_csv index column has an empty name and is skipped.
  test::write_text(dir.file("pandas.csv"), ",ImageID,label\n0,a,x\n1,b,y\n2,c,z\n");
  r = run_cli({"-q", "import-npy", "--npy", dir.file("emb.npy"), "--ids", dir.file("pandas.csv"), "--out",
               dir.file("e4.h5")});
  REQUIRE(r.exit_code == 0);
  auto e4 = read_embeddings(dir.file("e4.h5"));
  REQUIRE(e4.columns.size() == 1);
  CHECK(e4.columns[0].name == "label");
  CHECK(e4.ids == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("cli import-npy: bad inputs exit 1 naming the files and leave outputs untouched") {
  test::TempDir dir;
  std::vector<float> x(8, 1.f);
  write_npy(dir.file("emb.npy"), x.data(), {2, 4});
  test::write_text(dir.file("three.csv"), "ImageID\na\nb\nc\n");
  test::write_text(dir.file("out.h5"), "precious");
  auto r = run_cli(
      {"import-npy", "--npy", dir.file("emb.npy"), "--ids", dir.file("three.csv"), "--out", dir.file("out.h5")});
  CHECK(r.exit_code == 1);
  CHECK(contains(r.err, "emb.npy has 2 rows"));
  CHECK(contains(r.err, "three.csv has 3 id rows"));
  CHECK(test::read_text(dir.file("out.h5")) == "precious");

  // Non-finite values name the npy file, row and id.
  x[5] = std::numeric_limits<float>::quiet_NaN();
  write_npy(dir.file("nan.npy"), x.data(), {2, 4});
  test::write_text(dir.file("two.csv"), "ImageID\na\nb\n");
  r = run_cli({"import-npy", "--npy", dir.file("nan.npy"), "--ids", dir.file("two.csv"), "--out", dir.file("out.h5")});
  CHECK(r.exit_code == 1);
  CHECK(contains(r.err, "nan.npy: row 1 (id 'b') has NaN at column 1"));
  CHECK(test::read_text(dir.file("out.h5")) == "precious");
  CHECK(std::filesystem::directory_iterator(dir.path) != std::filesystem::directory_iterator());
  for (auto& f : std::filesystem::directory_iterator(dir.path))  // no temp files left behind
    CHECK_MESSAGE(f.path().filename().string().find("out.h5.") != 0, f.path().string());

  // Duplicate ids, a missing id column, a 1-D array, a missing file.
  test::write_text(dir.file("dup.csv"), "ImageID\na\na\n");
  r = run_cli({"import-npy", "--npy", dir.file("emb.npy"), "--ids", dir.file("dup.csv"), "--out", dir.file("o.h5")});
  CHECK(r.exit_code == 1);
  CHECK(contains(r.err, "dup.csv"));
  CHECK(contains(r.err, "duplicate id 'a'"));
  r = run_cli({"import-npy", "--npy", dir.file("emb.npy"), "--ids", dir.file("two.csv"), "--id-col", "image", "--out",
               dir.file("o.h5")});
  CHECK(r.exit_code == 1);
  CHECK(contains(r.err, "no column 'image'"));
  write_npy(dir.file("flat.npy"), x.data(), {8});
  r = run_cli({"import-npy", "--npy", dir.file("flat.npy"), "--ids", dir.file("two.csv"), "--out", dir.file("o.h5")});
  CHECK(r.exit_code == 1);
  CHECK(contains(r.err, "flat.npy: array has 1 dimensions, expected 2"));
  r = run_cli({"import-npy", "--npy", dir.file("absent.npy"), "--ids", dir.file("two.csv"), "--out", dir.file("o.h5")});
  CHECK(r.exit_code == 1);
  CHECK(contains(r.err, "absent.npy"));
  CHECK_FALSE(std::filesystem::exists(dir.file("o.h5")));
  // Missing required flags are usage errors.
  CHECK(run_cli({"import-npy", "--npy", dir.file("emb.npy")}).exit_code == 2);
}

TEST_CASE("cli export-npy: embeddings round trip through npy and back") {
  test::TempDir dir;
  Embeddings e;
  e.n = 3;
  e.dim = 2;
  e.ids = {kIdA, "b,comma", "c"};
  e.data = {0.25f, -1.f, 3.f, 4.5f, 1e-7f, 6.f};
  Column label;
  label.name = "label";
  label.strings = {"x", "y", "z"};
  Column score;
  score.name = "score";
  score.numeric = true;
  score.numbers = {1, std::numeric_limits<double>::quiet_NaN(), 0.1};
  e.columns = {label, score};
  write_embeddings(dir.file("e.h5"), e);
  auto r = run_cli(
      {"export-npy", "--in", dir.file("e.h5"), "--out", dir.file("x.npy"), "--ids-out", dir.file("ids.csv"), "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(nlohmann::json::parse(r.out)["format"] == "conceptlab.embeddings");
  auto a = read_npy(dir.file("x.npy"));
  CHECK(a.dtype == NpyDtype::f32);
  CHECK(a.shape == std::vector<int64_t>{3, 2});
  CHECK(a.as<float>() == e.data);
  auto ids = read_csv(dir.file("ids.csv"));
  CHECK(ids.header == std::vector<std::string>{"ImageID", "label", "score"});
  CHECK(ids.column("ImageID") == e.ids);
  CHECK(ids.column("score") == std::vector<std::string>{"1", "", "0.1"});

  r = run_cli(
      {"-q", "import-npy", "--npy", dir.file("x.npy"), "--ids", dir.file("ids.csv"), "--out", dir.file("back.h5")});
  REQUIRE(r.exit_code == 0);
  auto back = read_embeddings(dir.file("back.h5"));
  CHECK(back.ids == e.ids);
  CHECK(back.data == e.data);
  REQUIRE(back.columns.size() == 2);
  CHECK(find_column(back.columns, "label")->strings == label.strings);
  CHECK(find_column(back.columns, "score")->numbers[2] == 0.1);

  // Refuses to overwrite its input; a non-conceptlab file is bad input.
  r = run_cli({"export-npy", "--in", dir.file("e.h5"), "--out", dir.file("e.h5")});
  CHECK(r.exit_code == 1);
  CHECK(read_embeddings(dir.file("e.h5")).data == e.data);
  r = run_cli({"export-npy", "--in", dir.file("ids.csv"), "--out", dir.file("y.npy")});
  CHECK(r.exit_code == 1);
  CHECK(contains(r.err, "ids.csv"));
  CHECK_FALSE(std::filesystem::exists(dir.file("y.npy")));
}

TEST_CASE("cli export-npy: activations are densified, with a size limit") {
  test::TempDir dir;
  Activations acts;
  acts.ids = {"a", "b", "c"};
  acts.acts.n_cols = 5;
  int32_t c0[] = {1, 4};
  float v0[] = {0.5f, 2.f};
  int32_t c2[] = {0};
  float v2[] = {7.f};
  acts.acts.append_row(c0, v0, 2);
  acts.acts.append_row(nullptr, nullptr, 0);
  acts.acts.append_row(c2, v2, 1);
  write_activations(dir.file("acts.h5"), acts);
  auto r = run_cli({"-q", "export-npy", "--in", dir.file("acts.h5"), "--out", dir.file("acts.npy"), "--ids-out",
                    dir.file("ids.csv"), "--id-col", "id"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto a = read_npy(dir.file("acts.npy"));
  CHECK(a.shape == std::vector<int64_t>{3, 5});
  CHECK(a.as<float>() == std::vector<float>{0, 0.5f, 0, 0, 2.f, 0, 0, 0, 0, 0, 7.f, 0, 0, 0, 0});
  auto ids = read_csv(dir.file("ids.csv"));
  CHECK(ids.header == std::vector<std::string>{"id"});
  CHECK(ids.column("id") == acts.ids);

  r = run_cli({"export-npy", "--in", dir.file("acts.h5"), "--out", dir.file("big.npy"), "--max-gb", "1e-9"});
  CHECK(r.exit_code == 1);
  CHECK(contains(r.err, "acts.h5"));
  CHECK(contains(r.err, "--max-gb"));
  CHECK_FALSE(std::filesystem::exists(dir.file("big.npy")));
}

TEST_CASE("cli export-npy/import-npy: reference embeddings in ../shared round trip") {
  std::string shared = test::shared_dir();
  if (shared.empty()) {
    MESSAGE("skip: ../shared absent");
    return;
  }
  test::TempDir dir;
  std::string src = shared + "/derm7pt/embeddings_mnv1.h5";
  auto r = run_cli({"-q", "export-npy", "--in", src, "--out", dir.file("all_embeddings.npy"), "--ids-out",
                    dir.file("ids.csv")});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto ref = read_embeddings(src);
  auto a = read_npy(dir.file("all_embeddings.npy"));
  CHECK(a.shape == std::vector<int64_t>{ref.n, ref.dim});
  CHECK(a.as<float>() == ref.data);
  // Metadata joins on ImageID from the real meta.csv.
  r = run_cli({"-q", "import-npy", "--npy", dir.file("all_embeddings.npy"), "--ids", dir.file("ids.csv"), "--out",
               dir.file("back.h5")});
  REQUIRE(r.exit_code == 0);
  auto back = read_embeddings(dir.file("back.h5"));
  CHECK(back.ids == ref.ids);
  CHECK(back.data == ref.data);
  auto meta = read_csv(shared + "/derm7pt/meta.csv");
  auto cols = columns_for_ids(meta, "ImageID", back.ids, dir.file("back.h5"));
  CHECK(find_column(cols, "melanoma")->size() == static_cast<size_t>(back.n));
}
