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
  CHECK(j["masks"] == t.file("w/masks.h5"));
  CHECK(fs::exists(t.file("w/masks.h5")));
  for (auto& id : meta.column("ImageID")) CHECK(fs::exists(t.file("w/images/" + id)));
  for (auto& v : meta.column("label")) CHECK((v == "benign" || v == "malignant"));
  auto pre = cl::embed::load_preprocess(t.file("w/encoder.json"));
  CHECK(pre.image_size == 128);
  // Same-seed determinism is tested on the library (tests/demo); one world is enough here.
  CHECK(cl::test::run_cli({"demo-data", "--out", t.file("w3"), "--hair-malignant", "1.5"}).exit_code == 2);
  CHECK_FALSE(fs::exists(t.file("w3")));

  auto d = cl::test::run_cli(
      {"-q", "demo", "--out", t.file("d"), "--n", "120", "--device", "cpu", "--sae-epochs", "5", "--json"});
  INFO(d.err);
  REQUIRE(d.exit_code == 0);
  auto dj = nlohmann::json::parse(d.out);
  CHECK(dj["world"]["n"] == 120);
  for (auto f : {"embeddings.h5", "sae.h5", "activations.h5", "activations.index.h5", "cbm.h5", "probe.h5",
                 "cbm_unbiased.h5", "classify.json", "match.json", "global.json", "global.png", "curve.csv",
                 "curve.png", "interventions.json", "report.json", "report.md", "workspace.json",
                 "embeddings.patches.h5", "activations.patches.h5", "localize.json"})
    CHECK_MESSAGE(fs::exists(t.file("d") + "/" + f), f);
  std::vector<std::string> ran;
  for (auto& s : dj["steps"]) {
    ran.push_back(s["step"]);
    CHECK(s["ran"] == true);  // a fresh world: every step runs
  }
  CHECK(ran == std::vector<std::string>{"embed", "sae", "encode", "classify", "explain", "intervene", "bench", "report"});
  const auto& sae = dj["sae"];
  CHECK(sae["n_latents"] == 512);
  CHECK(sae["fvu"].get<double>() < 1.5);  // 5 epochs on 81 train images: barely fitted, but finite
  CHECK(sae["l0"].get<double>() == doctest::Approx(2).epsilon(0.1));  // batchtopk on patches, k = 2 on average
  REQUIRE(dj["concepts"].size() == 12);
  for (auto& m : dj["concepts"]) {
    INFO(m.dump());
    CHECK(m["latent"].get<int64_t>() >= 0);
    CHECK(m["latent"].get<int64_t>() < 512);
    CHECK(m["auroc"].get<double>() >= 0.5);  // the best latent is never worse than chance
    CHECK(m["pointing"].is_number());           // the spatial path measured where it fires
  }
  for (auto k : {"cbm_auroc", "probe_auroc", "unbiased_auroc"}) {
    CHECK(dj[k].get<double>() >= 0.0);
    CHECK(dj[k].get<double>() <= 1.0);
  }
  // The report on disk is the pipeline's, and report.md tells the same story.
  auto rep = nlohmann::json::parse(cl::test::read_text(t.file("d/report.json")));
  CHECK(rep["classify"]["cbm"]["test"]["auroc"] == dj["cbm_auroc"]);
  CHECK(cl::test::read_text(t.file("d/report.md")).find("malignant") != std::string::npos);
  CHECK(cl::test::read_text(t.file("d/report.md")).find("## Where the concept latents fire") != std::string::npos);
  CHECK(rep["localize"]["concepts"].size() == 12);
  // The story as text.
  auto txt = cl::test::run_cli({"-q", "demo", "--out", t.file("d2"), "--n", "120", "--device", "cpu", "--sae-epochs", "2"});
  INFO(txt.err);
  REQUIRE(txt.exit_code == 0);
  CHECK(txt.out.find("concepts the SAE found") != std::string::npos);
  CHECK(txt.out.find("hair") != std::string::npos);
  CHECK(txt.out.find("pointing") != std::string::npos);
  CHECK(txt.out.find("report.md") != std::string::npos);
  if (cl::test::run_cli({"view", "--help"}).exit_code == 0)  // built with the viewer
    CHECK(txt.out.find("open it: conceptlab view " + t.file("d2")) != std::string::npos);
  // Bad usage leaves no output behind.
  CHECK(cl::test::run_cli({"-q", "demo", "--out", t.file("e"), "--n", "50", "--sae-arch", "nope"}).exit_code == 2);
}

