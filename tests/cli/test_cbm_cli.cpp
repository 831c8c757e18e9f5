// `conceptlab cbm` / `probe` end to end on generated files: fit -> model file -> eval ->
// predict, and every bad-input case exits 1 with a message naming the file and the value.
#include <doctest/doctest.h>

#include <random>

#include <nlohmann/json.hpp>

#include "core/activations.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/h5.h"
#include "core/linear_model.h"
#include "tests/test_util.h"

using namespace cl;
using cl::test::run_cli;

namespace {

// 120 images, 16 latents; label "mel"/"nev" driven by latents 0 and 1, plus a 3-class column.
struct Files {
  cl::test::TempDir dir;
  std::string acts, emb, csv;
};

void make_files(Files& f, int n = 120) {
  std::mt19937_64 rng(4);
  std::uniform_real_distribution<double> U(0, 1);
  Activations a;
  a.acts.n_cols = 16;
  Embeddings e;
  e.n = n;
  e.dim = 16;
  CsvTable t;
  t.header = {"ImageID", "dx", "grade", "one", "tiny", "split"};
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> cols;
    std::vector<float> vals;
    std::vector<float> dense(16, 0.0f);
    for (int j = 0; j < 16; ++j)
      if (U(rng) < 0.4) cols.push_back(j), vals.push_back(float(U(rng) * 3)), dense[j] = vals.back();
    a.acts.append_row(cols.data(), vals.data(), int64_t(cols.size()));
    std::string id = "img" + std::to_string(i);
    a.ids.push_back(id);
    e.ids.push_back(id);
    e.data.insert(e.data.end(), dense.begin(), dense.end());
    double z = 1.5 * dense[0] - 1.5 * dense[1] + 0.5 * (U(rng) - 0.5);
    int g = dense[2] > 1.5 ? 2 : dense[3] > 1.0 ? 1 : 0;
    t.rows.push_back({id, z > 0 ? "mel" : "nev", std::to_string(g * 10), "x", i == 0 ? "b" : "a",
                      i % 5 == 0 ? "test" : i % 5 == 1 ? "valid" : "train"});
  }
  f.acts = f.dir.file("acts.h5");
  f.emb = f.dir.file("emb.h5");
  f.csv = f.dir.file("meta.csv");
  write_activations(f.acts, a);
  write_embeddings(f.emb, e);
  write_csv(f.csv, t);
}

}  // namespace

TEST_CASE("cli cbm: fit, eval, predict round trip") {
  Files f;
  make_files(f);
  auto model = f.dir.file("M.h5");
  auto r = run_cli({"-q", "cbm", "fit", "--features", f.acts, "--labels", f.csv, "--label-col", "dx", "--out", model,
                    "--splits", "5", "--alpha", "1e-3", "--alpha-path", "0.1,0.01,0.001", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["auroc"]["mean"].get<double>() > 0.8);
  CHECK(j["per_split"]["auroc"].size() == 5);
  CHECK(j["alpha_path"].size() == 3);
  CHECK(j["alpha_path"][0]["nnz"].get<int64_t>() <= j["alpha_path"][2]["nnz"].get<int64_t>());
  auto m = read_linear(model);
  CHECK(m.n_rows == 1);
  CHECK(m.classes == std::vector<std::string>{"mel", "nev"});
  CHECK(m.weights[0] < 0);  // latent 0 pushes towards "mel" = class 0, so the logit of "nev" drops
  CHECK(m.weights[1] > 0);

  auto e = run_cli({"cbm", "eval", "--model", model, "--features", f.acts, "--labels", f.csv, "--label-col", "dx",
                    "--json"});
  INFO(e.err);
  REQUIRE(e.exit_code == 0);
  CHECK(nlohmann::json::parse(e.out)["auroc"].get<double>() > 0.8);

  auto out = f.dir.file("preds.csv");
  auto p = run_cli({"cbm", "predict", "--model", model, "--features", f.acts, "--out", out});
  INFO(p.err);
  REQUIRE(p.exit_code == 0);
  auto t = read_csv(out);
  CHECK(t.header == std::vector<std::string>{"ImageID", "predicted", "p_mel", "p_nev"});
  CHECK(t.rows.size() == 120);
  double s = std::stod(t.rows[0][2]) + std::stod(t.rows[0][3]);
  CHECK(s == doctest::Approx(1.0).epsilon(1e-4));
}

TEST_CASE("cli cbm: multiclass with numeric labels, fixed split with tuning, embeddings input") {
  Files f;
  make_files(f, 150);
  auto model = f.dir.file("M3.h5");
  auto r = run_cli({"-q", "cbm", "fit", "--features", f.emb, "--labels", f.csv, "--label-col", "grade", "--out", model,
                    "--split-col", "split", "--tune", "alpha", "--tune-alphas", "0.1,0.01,0.001", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["protocol"] == "fixed_split");
  CHECK(j["tuning"].size() == 3);
  auto m = read_linear(model);
  CHECK(m.classes == std::vector<std::string>{"0", "10", "20"});  // numeric order, not "0","10","20" by chance
  CHECK(m.n_rows == 3);
  CHECK(m.features == "embeddings");
}

TEST_CASE("cli cbm: fixed split from id lists") {
  Files f;
  make_files(f);
  std::string tr, te;
  for (int i = 0; i < 120; ++i) (i % 4 == 0 ? te : tr) += "img" + std::to_string(i) + "\n";
  cl::test::write_text(f.dir.file("train.txt"), tr);
  cl::test::write_text(f.dir.file("test.txt"), te + "ghost\n");
  auto args = std::vector<std::string>{"-q", "cbm", "fit", "--features", f.acts, "--labels", f.csv, "--label-col", "dx",
                                       "--train-ids", f.dir.file("train.txt"), "--test-ids", f.dir.file("test.txt"),
                                       "--json"};
  auto r = run_cli(args);
  CHECK(r.exit_code == 1);  // "ghost" is not a labelled row
  CHECK(r.err.find("test.txt: 1 id(s)") != std::string::npos);
  cl::test::write_text(f.dir.file("test.txt"), te);
  r = run_cli(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["n_train"] == 90);
  CHECK(j["n_test"] == 30);
  CHECK(j["test"]["auroc"].get<double>() > 0.8);
}

TEST_CASE("cli probe: panderm and kshot on embeddings") {
  Files f;
  make_files(f, 150);
  auto r = run_cli({"-q", "probe", "--embeddings", f.emb, "--labels", f.csv, "--label-col", "dx,grade", "--splits", "2",
                    "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["columns"]["dx"]["auroc"]["mean"].get<double>() > 0.8);
  CHECK(j["columns"]["dx"]["lambda"].get<double>() == doctest::Approx(16 * 2 / 100.0));
  auto k = run_cli({"-q", "probe", "--embeddings", f.emb, "--labels", f.csv, "--label-col", "dx", "--protocol", "kshot",
                    "--shots", "1,4", "--seeds", "2", "--json"});
  INFO(k.err);
  REQUIRE(k.exit_code == 0);
  CHECK(nlohmann::json::parse(k.out)["shots"].size() == 2);
}

TEST_CASE("cli cbm: bad input exits 1 naming the file and the value") {
  Files f;
  make_files(f);
  auto fit = [&](const std::string& features, const std::string& csv, const std::string& col) {
    return run_cli({"-q", "cbm", "fit", "--features", features, "--labels", csv, "--label-col", col, "--splits", "2"});
  };
  auto r = fit(f.acts, f.csv, "one");
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("meta.csv") != std::string::npos);
  CHECK(r.err.find("single class 'x'") != std::string::npos);

  r = fit(f.acts, f.csv, "tiny");
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("meta.csv") != std::string::npos);
  CHECK(r.err.find("has 1 member") != std::string::npos);

  // CSV ids missing from the features: count and the first ids.
  auto t = read_csv(f.csv);
  t.rows.push_back({"ghost1", "mel", "0", "x", "a", "train"});
  t.rows.push_back({"ghost2", "nev", "0", "x", "a", "train"});
  auto bad_csv = f.dir.file("bad.csv");
  write_csv(bad_csv, t);
  r = fit(f.acts, bad_csv, "dx");
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("bad.csv: 2 id(s)") != std::string::npos);
  CHECK(r.err.find("ghost1") != std::string::npos);
  CHECK(r.err.find("acts.h5") != std::string::npos);

  // NaN activations, written below the format writer (which refuses them).
  auto nan_path = f.dir.file("nan.h5");
  {
    auto h = h5::create(nan_path);
    h5::write_header(h, kActivationsFormat, "{}");
    std::vector<std::string> ids;
    for (int i = 0; i < 120; ++i) ids.push_back("img" + std::to_string(i));
    h5::write_strings(h.get(), "ids", ids);
    auto g = h5::create_group(h.get(), "activations");
    h5::write_attr(g.get(), "n_latents", int64_t(16));
    std::vector<int64_t> indptr(121);
    std::vector<int32_t> idx(120);
    std::vector<float> val(120, 1.0f);
    for (int i = 0; i <= 120; ++i) indptr[i] = i;
    for (int i = 0; i < 120; ++i) idx[i] = i % 16;
    val[7] = NAN;
    h5::write_dataset<int64_t>(g.get(), "indptr", indptr.data(), {121});
    h5::write_dataset<int32_t>(g.get(), "indices", idx.data(), {120});
    h5::write_dataset<float>(g.get(), "values", val.data(), {120});
  }
  r = fit(nan_path, f.csv, "dx");
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("nan.h5") != std::string::npos);
  CHECK((r.err.find("nan") != std::string::npos || r.err.find("finite") != std::string::npos));

  // Evaluating with a label the model does not know.
  auto model = f.dir.file("M.h5");
  REQUIRE(run_cli({"-q", "cbm", "fit", "--features", f.acts, "--labels", f.csv, "--label-col", "dx", "--splits", "2",
                   "--out", model})
              .exit_code == 0);
  r = run_cli({"cbm", "eval", "--model", model, "--features", f.acts, "--labels", f.csv, "--label-col", "grade"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("is not a class of the model") != std::string::npos);

  // Bad usage is exit 2.
  r = run_cli({"-q", "cbm", "fit", "--features", f.acts, "--labels", f.csv, "--label-col", "dx", "--penalty", "l3"});
  CHECK(r.exit_code == 2);
}
