// `conceptlab sae bench` end to end through the built binary: SAEs and baselines scored into
// bench.json / .csv / .md and the charts, stability of a seed group, SCR pairs, a split column,
// agreement with `sae sweep`'s scores on the same split, and the errors users see.
#include "tests/torch_doctest.h"

#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/embeddings.h"
#include "core/patches.h"
#include "tests/sae/sae_test_data.h"
#include "tests/test_util.h"

using namespace cl;
namespace fs = std::filesystem;

namespace {

struct BenchWorld {
  std::string emb, labels;
  std::vector<std::string> saes;  // three seeds of one config
};

// Non-negative ground-truth embeddings (|x|, so NMF applies), two concept columns read off the
// first coordinates, a hair column correlated with c0 and a split column; three small SAEs.
BenchWorld make_world(const test::TempDir& t) {
  BenchWorld w;
  w.emb = t.file("e.h5");
  w.labels = t.file("meta.csv");
  const int64_t n = 400, d = 16;
  test::GroundTruth g = test::make_ground_truth(n, d, 32, 3);
  for (auto& v : g.x) v = std::abs(v);
  write_embeddings(w.emb, test::ground_truth_embeddings(g));
  const Embeddings e = read_embeddings(w.emb);
  std::string csv = "ImageID,c0,c1,hair,split\n";
  for (int64_t i = 0; i < n; ++i) {
    const int c0 = e.data[static_cast<size_t>(i * d)] > 0.3f, c1 = e.data[static_cast<size_t>(i * d + 1)] > 0.3f;
    const int hair = e.data[static_cast<size_t>(i * d + 2)] > 0.3f;
    csv += fmt::format("img_{},{},{},{},{}\n", i, c0, c1, hair, i % 5 == 0 ? "test" : "train");
  }
  test::write_text(w.labels, csv);
  for (int seed = 0; seed < 3; ++seed) {
    const std::string s = t.file(fmt::format("s{}.h5", seed));
    const auto r = test::run_cli({"-q", "sae", "train", "--embeddings", w.emb, "--out", s, "--arch", "topk",
                                  "--n-latents", "32", "--k", "4", "--epochs", "3", "--batch", "64", "--seed",
                                  std::to_string(seed), "--device", "cpu"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    w.saes.push_back(s);
  }
  return w;
}

}  // namespace

TEST_CASE("sae bench cli: SAEs against PCA, NMF and k-means -- SCR, TPP, stability -- outputs and the printed table") {
  test::TempDir t;
  const BenchWorld w = make_world(t);
  const std::string out = t.file("bench");
  auto r = test::run_cli({"-q", "sae", "bench", "--embeddings", w.emb, "--labels", w.labels, "--columns", "c0,c1",
                          "--saes", w.saes[0], w.saes[1], "--seeds-of", fmt::format("{},{},{}", w.saes[0], w.saes[1], w.saes[2]),
                          "--compare", fmt::format("{},{}", w.saes[0], w.saes[0]), "--spurious", "hair:c0",
                          "--probe-ks", "1,2,5", "--scr-ns", "1,2", "--tpp-ns", "1,2", "--baseline-iters", "10",
                          "--device", "cpu", "--out", out, "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["format"] == "conceptlab.sae_bench");
  CHECK(j["schema_version"] == 1);
  CHECK(j["n_heldout"] == 80);
  REQUIRE(j["entries"].size() == 5);  // two SAEs, PCA, NMF, k-means
  CHECK(j["entries"][0]["kind"] == "sae");
  CHECK(j["entries"][2]["kind"] == "pca");
  CHECK(j["entries"][3]["kind"] == "nmf");
  CHECK(j["entries"][4]["kind"] == "kmeans");
  const double sae_l0 = j["entries"][0]["reconstruction"]["l0"].get<double>();
  CHECK(j["baseline_l0"].get<double>() == std::max(1.0, std::round(sae_l0)));
  for (const auto& e : j["entries"]) {
    CAPTURE(e["label"].get<std::string>());
    CHECK(e["sparse_probing"]["mean_auroc"].size() == 3);
    CHECK(e["sparse_probing"]["mean_auroc"][0].get<double>() > 0.5);
    CHECK(e["reconstruction"]["fvu"].get<double>() < 1.0);
    CHECK(e["scr"].size() == 1);
    CHECK(e["tpp"]["tpp"].size() == 2);
  }
  // PCA and NMF keep the SAE's budget; k-means one code.
  CHECK(j["entries"][2]["reconstruction"]["l0"].get<double>() <= j["baseline_l0"].get<double>() + 1e-9);
  CHECK(j["entries"][4]["reconstruction"]["l0"].get<double>() <= 1.0);
  REQUIRE(j["stability"].size() == 2);
  CHECK(j["stability"][0]["saes"].size() == 3);
  CHECK(j["stability"][1]["mean_cosine"].get<double>() == doctest::Approx(1.0));  // an SAE against itself
  CHECK(j["stability"][0]["random_cosine"].get<double>() < j["stability"][1]["mean_cosine"].get<double>());
  for (const char* f : {"bench.json", "bench.csv", "bench.md", "probing.png", "pareto.png", "scr_hair_c0.png"})
    CHECK(fs::exists(fs::path(out) / f));
  const std::string md = test::read_text((fs::path(out) / "bench.md").string());
  CHECK(md.find("## Sparse probing") != std::string::npos);
  CHECK(md.find("### hair : c0") != std::string::npos);
  CHECK(md.find("## Stability") != std::string::npos);
  const std::string csv = test::read_text((fs::path(out) / "bench.csv").string());
  CHECK(csv.find("probe_auroc_k1") != std::string::npos);
  CHECK(csv.find("scr_hair:c0_n2") != std::string::npos);

  // The table for people, a split column, no baselines.
  r = test::run_cli({"-q", "sae", "bench", "--embeddings", w.emb, "--labels", w.labels, "--columns", "c0,c1",
                     "--saes", w.saes[0], "--split-col", "split", "--baselines", "", "--device", "cpu", "--out",
                     t.file("b2")});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("s0.h5") != std::string::npos);
  CHECK(r.out.find("dense probe on the embeddings") != std::string::npos);
  CHECK(r.out.find("320 training / 80 held-out") != std::string::npos);
  CHECK(r.out.find("PCA") == std::string::npos);
}

TEST_CASE("sae bench cli: bad input is named (columns, pairs, baselines, split values, NMF on signed data, dims)") {
  test::TempDir t;
  const BenchWorld w = make_world(t);
  const std::vector<std::string> base = {"-q", "sae", "bench", "--embeddings", w.emb, "--labels", w.labels,
                                         "--saes", w.saes[0], "--device", "cpu", "--baselines", "pca"};
  const auto run = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return test::run_cli(a);
  };
  auto r = run({"--columns", "c0,nope", "--out", t.file("o1")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("nope") != std::string::npos);
  CHECK_FALSE(fs::exists(t.file("o1")));
  r = run({"--columns", "c0", "--spurious", "hair", "--out", t.file("o2")});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("COLUMN:LABEL") != std::string::npos);
  r = run({"--columns", "c0", "--baselines", "ica", "--out", t.file("o3")});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("ica") != std::string::npos);
  r = run({"--columns", "c0", "--split-col", "c1", "--out", t.file("o4")});  // 0/1, not train/test
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("expected 'train' or 'test'") != std::string::npos);
  r = run({"--columns", "c0", "--seeds-of", w.saes[0], "--out", t.file("o5")});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("at least two") != std::string::npos);
  r = run({"--columns", "c0", "--saes", t.file("missing.h5"), "--out", t.file("o6")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("missing.h5") != std::string::npos);
  // NMF on embeddings with negative values: stops and names the file.
  const std::string signed_emb = t.file("signed.h5");
  test::write_ground_truth_embeddings(signed_emb, 400, 16, 32, 3);
  r = test::run_cli({"-q", "sae", "bench", "--embeddings", signed_emb, "--labels", w.labels, "--columns", "c0",
                     "--saes", w.saes[0], "--baselines", "nmf", "--device", "cpu", "--out", t.file("o7")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("signed.h5") != std::string::npos);
  CHECK(r.err.find("non-negative") != std::string::npos);
  // An SAE of another dimension.
  const std::string e8 = t.file("e8.h5");
  test::write_ground_truth_embeddings(e8, 400, 8, 16, 3);
  r = test::run_cli({"-q", "sae", "bench", "--embeddings", e8, "--labels", w.labels, "--columns", "c0", "--saes",
                     w.saes[0], "--device", "cpu", "--out", t.file("o8")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("dim 8") != std::string::npos);
  CHECK(r.err.find("expects 16") != std::string::npos);
  // An output that would replace an input; a count past its bound.
  fs::create_directories(t.file("o10"));
  fs::copy_file(w.labels, t.file("o10/bench.md"));
  r = test::run_cli({"-q", "sae", "bench", "--embeddings", w.emb, "--labels", t.file("o10/bench.md"), "--saes", w.saes[0],
                     "--device", "cpu", "--baselines", "pca", "--columns", "c0", "--out", t.file("o10")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("bench.md") != std::string::npos);
  CHECK(test::read_text(t.file("o10/bench.md")) == test::read_text(w.labels));
  r = run({"--columns", "c0", "--random-draws", "2000000000", "--out", t.file("o11")});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("random_draws") != std::string::npos);
  // No SAE and no budget for the baselines.
  r = test::run_cli({"-q", "sae", "bench", "--embeddings", w.emb, "--labels", w.labels, "--columns", "c0",
                     "--device", "cpu", "--out", t.file("o9")});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("baseline_l0") != std::string::npos);
}
