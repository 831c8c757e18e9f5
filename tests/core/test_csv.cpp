// CSV reader/writer and metadata columns: RFC 4180 edge cases, errors naming file and line,
// id joins and numeric/string type inference.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/csv.h"
#include "core/error.h"
#include "core/table.h"
#include "tests/test_util.h"

using namespace cl;

namespace {

std::string error_of(const std::string& text, const std::string& path = "meta.csv") {
  try {
    parse_csv(text, path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("csv: quoted fields with commas, doubled quotes and newlines") {
  auto t = parse_csv("id,note,n\na,\"x, y\",1\nb,\"he said \"\"hi\"\"\",2\nc,\"two\nlines\",3\n", "m.csv");
  REQUIRE(t.n_rows() == 3);
  CHECK(t.header == std::vector<std::string>{"id", "note", "n"});
  CHECK(t.rows[0][1] == "x, y");
  CHECK(t.rows[1][1] == "he said \"hi\"");
  CHECK(t.rows[2][1] == "two\nlines");
  CHECK(t.rows[2][2] == "3");
}

TEST_CASE("csv: CRLF, BOM, no trailing newline, empty fields") {
  auto t = parse_csv("\xEF\xBB\xBFid,a,b\r\nx,,1\r\ny,\"\",\r\nz,3,4", "m.csv");
  CHECK(t.header[0] == "id");  // BOM stripped
  REQUIRE(t.n_rows() == 3);
  CHECK(t.rows[0] == std::vector<std::string>{"x", "", "1"});
  CHECK(t.rows[1] == std::vector<std::string>{"y", "", ""});
  CHECK(t.rows[2] == std::vector<std::string>{"z", "3", "4"});
  // A quoted field may hold a CRLF which is kept verbatim.
  auto q = parse_csv("a,b\r\n\"1\r\n2\",3\r\n", "m.csv");
  CHECK(q.rows[0][0] == "1\r\n2");
  // Blank lines (including trailing ones) carry no record.
  auto b = parse_csv("a,b\n1,2\n\n3,4\n\n\n", "m.csv");
  CHECK(b.n_rows() == 2);
}

TEST_CASE("csv: ragged rows, unterminated quotes, empty file, duplicate header") {
  CHECK(error_of("a,b,c,d\n1,2,3,4\n1,2,3\n") == "meta.csv: line 3 has 3 fields, header has 4");
  // Line numbers count physical lines, including newlines inside quoted fields.
  CHECK(error_of("a,b\n\"x\ny\",1\n1,2,3\n") == "meta.csv: line 4 has 3 fields, header has 2");
  std::string e = error_of("a,b\n1,\"open\n2,3\n");
  CHECK(e.find("meta.csv") != std::string::npos);
  CHECK(e.find("line 2") != std::string::npos);
  CHECK(e.find("unterminated") != std::string::npos);
  CHECK(error_of("").find("meta.csv: empty file") == 0);
  CHECK(error_of("\xEF\xBB\xBF").find("meta.csv: empty file") == 0);
  CHECK(error_of("\n\r\n").find("meta.csv: empty file") == 0);
  e = error_of("id,x,id\n1,2,3\n");
  CHECK(e.find("duplicate column name 'id'") != std::string::npos);
  CHECK(e.find("meta.csv") == 0);
  CHECK(error_of("a,b\n\"x\"y,1\n").find("after a closing quote") != std::string::npos);
}

TEST_CASE("csv: column lookup errors name the file and the columns") {
  auto t = parse_csv("id,label\n1,2\n", "m.csv");
  CHECK(t.col("label") == 1);
  CHECK(t.has_col("id"));
  CHECK_FALSE(t.has_col("nope"));
  try {
    t.col("nope");
    FAIL("expected InputError");
  } catch (const InputError& e) {
    std::string m = e.what();
    CHECK(m.find("m.csv") != std::string::npos);
    CHECK(m.find("'nope'") != std::string::npos);
    CHECK(m.find("'label'") != std::string::npos);
  }
  CHECK(t.column("label") == std::vector<std::string>{"2"});
}

TEST_CASE("csv: format_csv quotes only where needed and round-trips") {
  CsvTable t;
  t.header = {"id", "text", "n"};
  t.rows = {{"a", "plain", "1"}, {"b", "with, comma", ""}, {"c", "q\"uote", "2.5"}, {"d", "line\nbreak", "x"},
            {"e", "cr\r\nlf", " sp "}};
  std::string s = format_csv(t);
  CHECK(s.find("a,plain,1\n") != std::string::npos);
  CHECK(s.find("b,\"with, comma\",\n") != std::string::npos);
  CHECK(s.find("c,\"q\"\"uote\",2.5\n") != std::string::npos);
  auto back = parse_csv(s, "x.csv");
  CHECK(back.header == t.header);
  CHECK(back.rows == t.rows);
  // A single empty field must not turn into a skipped blank line.
  CsvTable one;
  one.header = {"v"};
  one.rows = {{"1"}, {""}, {"3"}};
  auto back1 = parse_csv(format_csv(one), "one.csv");
  CHECK(back1.rows == one.rows);
}

TEST_CASE("csv: write_csv and read_csv round trip with non-ASCII ids") {
  test::TempDir dir;
  CsvTable t;
  t.header = {"ImageID", "label"};
  t.rows = {{"\xC3\xA9t\xC3\xA9_01.jpg", "melanoma"}, {"\xE7\x9A\xAE\xE8\x86\x9A_02", "nevus"}, {"plain", "bcc"}};
  std::string p = dir.file("meta.csv");
  write_csv(p, t);
  auto back = read_csv(p);
  CHECK(back.path == p);
  CHECK(back.rows == t.rows);
  auto idx = index_by(back, "ImageID");
  CHECK(idx.at("\xE7\x9A\xAE\xE8\x86\x9A_02") == 1);
  // Missing file names the file.
  try {
    read_csv(dir.file("absent.csv"));
    FAIL("expected InputError");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("absent.csv") != std::string::npos);
  }
}

TEST_CASE("csv: index_by rejects duplicate and empty ids") {
  auto dup = parse_csv("id,x\na,1\nb,2\na,3\n", "meta.csv");
  try {
    index_by(dup, "id");
    FAIL("expected InputError");
  } catch (const InputError& e) {
    std::string m = e.what();
    CHECK(m.find("meta.csv") == 0);
    CHECK(m.find("duplicate id 'a'") != std::string::npos);
  }
  auto empty = parse_csv("id,x\na,1\n,2\n", "meta.csv");
  CHECK_THROWS_WITH_AS(index_by(empty, "id"), doctest::Contains("empty id"), InputError);
  CHECK_THROWS_AS(index_by(empty, "nope"), InputError);
}

TEST_CASE("csv: join_rows maps ids to rows and reports missing ids") {
  auto t = parse_csv("id,x\na,1\nb,2\nc,3\n", "meta.csv");
  CHECK(join_rows(t, "id", {"c", "a"}, "emb.h5") == std::vector<size_t>{2, 0});
  try {
    join_rows(t, "id", {"a", "zz", "b", "yy"}, "emb.h5");
    FAIL("expected InputError");
  } catch (const InputError& e) {
    std::string m = e.what();
    CHECK(m.find("meta.csv") != std::string::npos);
    CHECK(m.find("emb.h5") != std::string::npos);
    CHECK(m.find("2 of 4 ids") != std::string::npos);
    CHECK(m.find("'zz', 'yy'") != std::string::npos);
  }
}

TEST_CASE("csv: columns_for_ids infers numeric columns with missing values") {
  auto t = parse_csv("id,score,label,flag,empty\na,0.5,mel,1,\nb,,nev,0,\nc,-2e3,3,1,\nd,nan,x,,\n", "meta.csv");
  auto cols = columns_for_ids(t, "id", {"d", "c", "b", "a"}, "emb.h5");
  REQUIRE(cols.size() == 4);
  const Column* score = find_column(cols, "score");
  REQUIRE(score);
  CHECK(score->numeric);
  REQUIRE(score->size() == 4);
  CHECK(std::isnan(score->numbers[0]));
  CHECK(score->numbers[1] == -2000.0);
  CHECK(std::isnan(score->numbers[2]));
  CHECK(score->numbers[3] == 0.5);
  CHECK(score->value_string(1) == "-2000");
  CHECK(score->value_string(2) == "");
  CHECK(score->value_string(3) == "0.5");
  const Column* label = find_column(cols, "label");
  REQUIRE(label);
  CHECK_FALSE(label->numeric);  // one non-number makes the whole column text
  CHECK(label->strings == std::vector<std::string>{"x", "3", "nev", "mel"});
  const Column* flag = find_column(cols, "flag");
  REQUIRE(flag);
  CHECK(flag->numeric);
  CHECK(flag->value_string(0) == "");
  CHECK(flag->value_string(1) == "1");
  const Column* empty = find_column(cols, "empty");
  REQUIRE(empty);
  CHECK_FALSE(empty->numeric);
  CHECK(find_column(cols, "id") == nullptr);
}

TEST_CASE("table: make_column parsing and shortest round-trip formatting") {
  auto c = make_column("v", {"0.1", "1e-7", "+3", " 4 ", "123456789012", "0.30000000000000004"});
  REQUIRE(c.numeric);
  CHECK(c.value_string(0) == "0.1");
  CHECK(std::stod(c.value_string(1)) == 1e-7);
  CHECK(c.value_string(2) == "3");
  CHECK(c.value_string(3) == "4");
  CHECK(c.value_string(4) == "123456789012");
  CHECK(std::stod(c.value_string(5)) == 0.30000000000000004);
  CHECK_FALSE(make_column("v", {"1", "inf"}).numeric);  // only finite numbers or NaN count
  CHECK_FALSE(make_column("v", {"1", "2x"}).numeric);
  CHECK_FALSE(make_column("v", {"0x10"}).numeric);
  CHECK(make_column("v", {}).size() == 0);
}

TEST_CASE("csv: many rows parse with every field intact") {
  std::string text = "ImageID,label,score\n";
  const int n = 50000;
  for (int i = 0; i < n; ++i) text += fmt::format("img_{},\"l,{}\",{}\r\n", i, i % 7, i * 0.25);
  auto t = parse_csv(text, "big.csv");
  REQUIRE(t.n_rows() == static_cast<size_t>(n));
  CHECK(t.rows[12345][0] == "img_12345");
  CHECK(t.rows[12345][1] == "l,4");
  auto cols = columns_for_ids(t, "ImageID", {"img_49999", "img_2"}, "ids");
  CHECK(find_column(cols, "score")->numbers == std::vector<double>{49999 * 0.25, 0.5});
}

TEST_CASE("csv: derm7pt meta.csv in ../shared parses with typed columns") {
  std::string dir = test::shared_dir();
  if (dir.empty()) {
    MESSAGE("skip: ../shared absent");
    return;
  }
  auto t = read_csv(dir + "/derm7pt/meta.csv");
  CHECK(t.n_rows() == 1011);
  auto idx = index_by(t, "ImageID");
  CHECK(idx.at("NEL/Nel026.jpg") == 0);
  std::vector<std::string> ids = t.column("ImageID");
  std::swap(ids[0], ids[1]);
  auto cols = columns_for_ids(t, "ImageID", ids, "test");
  CHECK(cols.size() == t.header.size() - 1);
  CHECK(find_column(cols, "melanoma")->numeric);
  CHECK_FALSE(find_column(cols, "diagnosis")->numeric);
  CHECK(find_column(cols, "diagnosis")->strings[1] == "basal cell carcinoma");
  CHECK_FALSE(find_column(cols, "split")->numeric);
  const Column* hair = find_column(cols, "hair");
  REQUIRE(hair);
  CHECK(hair->numeric);  // 0/1 with empty cells where not annotated
  CHECK(std::isnan(hair->numbers[1]));  // NEL/Nel026.jpg has no artifact annotation
  CHECK(std::count_if(hair->numbers.begin(), hair->numbers.end(), [](double v) { return v == 1.0; }) > 0);
}
