// CLI contract: subcommand listing, --help defaults, exit codes (0 ok, 2 usage, 1 bad input),
// one-line errors naming the file, and inspect on every format.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "core/activations.h"
#include "core/embeddings.h"
#include "core/h5.h"
#include "tests/test_util.h"

using namespace cl;

TEST_CASE("cli: --help lists the subcommands, no subcommand is a usage error") {
  auto r = test::run_cli({"--help"});
  CHECK(r.exit_code == 0);
  for (auto name : {"inspect", "import-npy", "export-npy", "embed", "merge-embeddings", "sae", "cbm", "probe", "demo", "demo-data"})
    CHECK_MESSAGE(r.out.find(name) != std::string::npos, name);
  CHECK(test::run_cli({}).exit_code == 2);
  CHECK(test::run_cli({"no-such-command"}).exit_code == 2);
  CHECK(test::run_cli({"inspect"}).exit_code == 2);  // missing positional
}

TEST_CASE("cli: inspect prints text and exactly one JSON object") {
  test::TempDir tmp;
  Embeddings e;
  e.n = 2;
  e.dim = 3;
  e.ids = {"a", "b"};
  e.data = {1, 2, 3, 4, 5, 6};
  write_embeddings(tmp.file("e.h5"), e);
  auto t = test::run_cli({"inspect", tmp.file("e.h5")});
  CHECK(t.exit_code == 0);
  CHECK(t.out.find("conceptlab.embeddings") != std::string::npos);
  CHECK(t.out.find("[2,3]") != std::string::npos);
  auto j = test::run_cli({"inspect", "--json", tmp.file("e.h5")});
  REQUIRE(j.exit_code == 0);
  auto parsed = nlohmann::json::parse(j.out);  // throws if more than one object
  CHECK(parsed["schema_version"] == 1);
  CHECK(parsed["datasets"]["ids"]["shape"][0] == 2);
  // The global flags work after the subcommand too.
  for (auto flag : {"-q", "--quiet", "-v"}) {
    auto q = test::run_cli({"inspect", tmp.file("e.h5"), flag});
    CHECK_MESSAGE(q.exit_code == 0, flag);
    CHECK(q.out.find("conceptlab.embeddings") != std::string::npos);
  }
}

TEST_CASE("cli: malformed inputs give exit 1 and a one-line error naming the file and value") {
  test::TempDir tmp;
  std::string trunc = tmp.file("trunc.h5"), newer = tmp.file("newer.h5");
  Embeddings e;
  e.n = 500;
  e.dim = 64;
  for (int i = 0; i < 500; ++i) e.ids.push_back(std::to_string(i));
  e.data.assign(500 * 64, 0.5f);
  write_embeddings(trunc, e);
  std::filesystem::resize_file(trunc, std::filesystem::file_size(trunc) / 3);
  {
    h5::File f = h5::create(newer);
    h5::write_attr(f.get(), "format", std::string(kEmbeddingsFormat));
    h5::write_attr(f.get(), "schema_version", int64_t{7});
  }
  auto a = test::run_cli({"inspect", trunc});
  CHECK(a.exit_code == 1);
  CHECK(a.err.find("trunc.h5") != std::string::npos);
  auto b = test::run_cli({"export-npy", "--in", newer, "--out", tmp.file("x.npy")});
  CHECK(b.exit_code == 1);
  CHECK(b.err.find("newer.h5") != std::string::npos);
  CHECK(b.err.find("schema_version 7") != std::string::npos);
  CHECK(std::count(b.err.begin(), b.err.end(), '\n') == 1);
  CHECK_FALSE(std::filesystem::exists(tmp.file("x.npy")));
}

TEST_CASE("cli: a failing command leaves an existing output untouched") {
  test::TempDir tmp;
  std::string out = tmp.file("out.npy");
  test::write_text(out, "precious");
  std::string bad = tmp.file("bad.h5");
  test::write_text(bad, "not hdf5 at all");
  auto r = test::run_cli({"export-npy", "--in", bad, "--out", out});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("bad.h5") != std::string::npos);
  CHECK(test::read_text(out) == "precious");
}
