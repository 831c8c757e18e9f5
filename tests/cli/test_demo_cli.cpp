// `conceptlab demo-data` and `conceptlab demo` end to end on small worlds: outputs, determinism,
// the report's structure, bad usage.
#include <doctest/doctest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/csv.h"
#include "tests/test_util.h"
#include "tools/embed/preprocess.h"

namespace fs = std::filesystem;
using cl::test::TempDir;

TEST_CASE("demo-data and demo commands") {
  TempDir t;
  auto r = cl::test::run_cli({"-q", "demo-data", "--out", t.file("w"), "--n", "30", "--seed", "3", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["n"] == 30);
  auto meta = cl::read_csv(t.file("w/meta.csv"));
  CHECK(meta.n_rows() == 30);
  CHECK(meta.header.size() == 4 + 12);
  CHECK(meta.has_col("hair"));
  CHECK(meta.has_col("multiple_colours"));
  for (auto& id : meta.column("ImageID")) CHECK(fs::exists(t.file("w/images/" + id)));
  for (auto& v : meta.column("label")) CHECK((v == "benign" || v == "malignant"));
  auto pre = cl::embed::load_preprocess(t.file("w/encoder.json"));
  CHECK(pre.image_size == 128);
  // Same seed, same metadata.
  REQUIRE(cl::test::run_cli({"-q", "demo-data", "--out", t.file("w2"), "--n", "30", "--seed", "3"}).exit_code == 0);
  CHECK(cl::test::read_text(t.file("w/meta.csv")) == cl::test::read_text(t.file("w2/meta.csv")));
  CHECK(cl::test::run_cli({"demo-data", "--out", t.file("w3"), "--hair-malignant", "1.5"}).exit_code == 2);

  auto d = cl::test::run_cli(
      {"-q", "demo", "--out", t.file("d"), "--n", "120", "--device", "cpu", "--sae-epochs", "5", "--json"});
  INFO(d.err);
  REQUIRE(d.exit_code == 0);
  auto dj = nlohmann::json::parse(d.out);
  CHECK(dj["embed"]["n_rows"] == 120);
  CHECK(dj["check"]["concept_auroc"].size() == 12);
  for (auto f : {"embeddings.h5", "sae.h5", "activations.h5", "report.json"}) CHECK(fs::exists(t.file("d") + "/" + f));
  const auto& sae = dj["sae"]["metrics"];
  CHECK(sae["n"] == 120);
  CHECK(sae["fvu"].get<double>() < 1.0);
  CHECK(sae["l0"].get<double>() == doctest::Approx(16).epsilon(1e-6));  // topk, k = 16
  REQUIRE(dj["concept_latents"].size() == 12);
  for (auto& m : dj["concept_latents"]) {
    CHECK(m["latent"].get<int64_t>() >= 0);
    CHECK(m["latent"].get<int64_t>() < sae["n_latents"].get<int64_t>());
    CHECK(m["auroc"].get<double>() >= 0.5);  // the best latent is never worse than chance
  }
  CHECK(dj["cbm"]["report"]["n_test"].get<int64_t>() + dj["cbm"]["report"]["n_train"].get<int64_t>() == 120);
  CHECK(dj["probe"]["report"]["n_test"] == dj["cbm"]["report"]["n_test"]);
  CHECK(nlohmann::json::parse(cl::test::read_text(t.file("d/report.json"))) == dj);
  // Bad usage leaves no output behind.
  CHECK(cl::test::run_cli({"-q", "demo", "--out", t.file("e"), "--n", "50", "--sae-arch", "nope"}).exit_code == 2);
}

